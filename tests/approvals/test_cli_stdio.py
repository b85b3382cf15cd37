"""Approvals through the real server over stdio, decided with the real ``scoped-mcp approvals`` CLI.

The agent side is a real MCP client (FastMCP's, over the server's stdin/stdout); the operator side
is the CLI in another process talking to the server's control socket.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.approvals.support import (
    AGENT_ID,
    AGENT_TYPE,
    cli,
    decide_when_requested,
    events,
    filesystem_manifest,
    pending,
    server_env,
    wait_for_request,
)
from tests.support import running_server

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]
WRITE = "filesystem_write_file"


def gated(wait: float = 20, lifetime: float = 60, **rule: Any) -> dict[str, Any]:
    return {
        "wait": wait,
        "lifetime": lifetime,
        "progress_seconds": 0.5,
        "rules": [{"tools": ["filesystem_write_*", "filesystem_delete_*"], **rule}],
    }


async def test_cli_approval_lets_one_identical_call_through(tmp_path: Path) -> None:
    """Approved by CLI: the held call runs once; the same call again and a changed one do not."""
    manifest, root = filesystem_manifest(tmp_path, gated(wait=20))
    args = {"path": "notes.txt", "content": "approved text"}
    async with running_server(
        manifest,
        agent_id=AGENT_ID,
        agent_type=AGENT_TYPE,
        extra_env=server_env(tmp_path),
        home=tmp_path / "home",
    ) as server:
        async with anyio.create_task_group() as group:
            decided: list[dict[str, Any]] = []

            async def approve() -> None:
                decided.append(await decide_when_requested(tmp_path, WRITE, "approve"))

            group.start_soon(approve)
            result = await server.call(WRITE, args)
        assert (root / "notes.txt").read_text() == "approved text"
        assert result
        (request,) = decided
        assert request["arguments"] == (
            '{"content": "approved text", "encoding": "utf-8", "path": "notes.txt"}'
        )
        # Spent: the identical call is held again as a new request, and so is a changed one.
        (root / "notes.txt").unlink()
        again = await _held_then_denied(server, tmp_path, args)
        changed = await _held_then_denied(server, tmp_path, {**args, "content": "other text"})
        assert request["id"] not in again + changed
        assert not (root / "notes.txt").exists()
        # The filesystem reads run as today: no rule selects them.
        assert await server.call("filesystem_list_dir", {"path": "."}) is not None
        records = server.audit_records()
    requested = events(records, "approval_requested")
    assert requested[0]["approval"] == request["id"]
    assert requested[0]["tool"] == WRITE
    assert requested[0]["channels"] == ["cli"]
    (approved,) = events(records, "approved")
    assert approved["approval"] == request["id"]
    assert approved["channel"] == "cli"
    assert approved["approver"] == pwd.getpwuid(os.geteuid()).pw_name
    calls = [r for r in records if r.get("event") == "tool_call" and r.get("tool") == WRITE]
    assert calls[0]["outcome"] == "ok"
    assert calls[0]["approval"] == request["id"]
    assert [c["outcome"] for c in calls[1:]] == ["denied", "denied"]
    assert calls[1]["approval"] != request["id"]
    starts = [r for r in records if r.get("event") == "call_start" and r.get("tool") == WRITE]
    assert [s["approval"] for s in starts] == [request["id"]], "only the approved call began"


async def _held_then_denied(server: Any, tmp_path: Path, args: dict[str, Any]) -> str:
    """Make a call that must be held as a new request; deny it with the CLI; return the error."""
    async with anyio.create_task_group() as group:
        group.start_soon(decide_when_requested, tmp_path, WRITE, "deny", "--reason", "again")
        refusal = str(await server.error(WRITE, args))
    assert refusal.endswith("was denied: again"), refusal
    return refusal


async def test_pending_then_repeat_runs_once(tmp_path: Path) -> None:
    """Not decided within wait: "pending"; approved later, the repeated identical call runs once."""
    manifest, root = filesystem_manifest(tmp_path, gated(wait=1, lifetime=60))
    args = {"path": "later.txt", "content": "after approval"}
    async with running_server(
        manifest,
        agent_id=AGENT_ID,
        agent_type=AGENT_TYPE,
        extra_env=server_env(tmp_path),
        home=tmp_path / "home",
    ) as server:
        first = await server.error(WRITE, args)
        request = wait_for_request(tmp_path, WRITE)
        assert first.endswith(
            f"pending approval {request['id']}; repeat the same call after it is approved"
        )
        assert not (root / "later.txt").exists()
        listed = cli(tmp_path, "list")
        assert listed.returncode == 0, listed.stderr
        assert f"{request['id']}  pending   {AGENT_ID}  {WRITE}" in listed.stdout
        assert '"content": "after approval"' in listed.stdout
        # A call with other arguments never matches the request.
        other = await server.error(WRITE, {**args, "content": "changed"})
        assert request["id"] not in other
        done = cli(tmp_path, "approve", request["id"])
        assert done.returncode == 0, done.stderr
        assert f"{request['id']}: approved" in done.stdout
        await server.call(WRITE, args)
        assert (root / "later.txt").read_text() == "after approval"
        (root / "later.txt").unlink()
        repeat = await server.error(WRITE, args)
        assert "pending approval" in repeat
        assert request["id"] not in repeat
        assert not (root / "later.txt").exists()
        records = server.audit_records()
    calls = [r for r in records if r.get("event") == "tool_call" and r.get("tool") == WRITE]
    assert [c["outcome"] for c in calls] == ["denied", "denied", "ok", "denied"]
    assert calls[2]["approval"] == request["id"]


async def test_denial_is_refused_with_its_reason_and_audited(tmp_path: Path) -> None:
    """Denied by CLI with a reason: the call is refused with it; the repeat too; nothing written."""
    manifest, root = filesystem_manifest(tmp_path, gated(wait=20))
    args = {"path": "no.txt", "content": "never"}
    async with running_server(
        manifest,
        agent_id=AGENT_ID,
        agent_type=AGENT_TYPE,
        extra_env=server_env(tmp_path),
        home=tmp_path / "home",
    ) as server:
        async with anyio.create_task_group() as group:
            group.start_soon(decide_when_requested, tmp_path, WRITE, "deny", "--reason", "not now")
            refusal = await server.error(WRITE, args)
        assert refusal.endswith("was denied: not now")
        assert "denied" in await server.error(WRITE, args)
        records = server.audit_records()
    assert not root.exists() or not (root / "no.txt").exists()
    (denied,) = events(records, "denied")
    assert denied["channel"] == "cli"
    assert denied["reason"] == "not now"
    calls = [r for r in records if r.get("event") == "tool_call" and r.get("tool") == WRITE]
    assert [c["outcome"] for c in calls] == ["denied", "denied"]
    assert all(c["approval"] == denied["approval"] for c in calls)
    assert all(c["error_type"] == "ApprovalRefused" for c in calls)
    assert not [r for r in records if r.get("event") == "call_start"]


async def test_expiry_is_refused_and_audited(tmp_path: Path) -> None:
    """A request undecided past its lifetime expires: audited once, no longer approvable."""
    manifest, root = filesystem_manifest(tmp_path, gated(wait=0.5, lifetime=2))
    args = {"path": "late.txt", "content": "too late"}
    async with running_server(
        manifest,
        agent_id=AGENT_ID,
        agent_type=AGENT_TYPE,
        extra_env=server_env(tmp_path),
        home=tmp_path / "home",
    ) as server:
        first = await server.error(WRITE, args)
        request_id = first.split("pending approval ", 1)[1].split(";", 1)[0]
        await anyio.sleep(3)
        done = cli(tmp_path, "approve", request_id)
        assert done.returncode == 1
        assert "expired" in done.stderr
        assert pending(tmp_path) == []
        # The repeat does not revive it: it is a new request, held and refused in turn.
        again = await server.error(WRITE, args)
        assert "pending approval" in again
        assert request_id not in again
        records = server.audit_records()
    assert not (root / "late.txt").exists()
    (expired,) = events(records, "expired")
    assert expired["approval"] == request_id
    assert expired.get("channel") is None
    assert expired.get("approver") is None
    assert expired["reason"] == "lifetime passed undecided"


async def test_progress_notifications_arrive_while_held(tmp_path: Path) -> None:
    """A client that sent a progressToken gets notifications/progress while the call waits."""
    manifest, _root = filesystem_manifest(tmp_path, gated(wait=2.5, lifetime=60))
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with running_server(
        manifest,
        agent_id=AGENT_ID,
        agent_type=AGENT_TYPE,
        extra_env=server_env(tmp_path),
        home=tmp_path / "home",
    ) as server:
        result = await server.client.call_tool(
            WRITE,
            {"path": "p.txt", "content": "x"},
            progress_handler=on_progress,
            raise_on_error=False,
        )
    assert result.is_error
    assert len(seen) >= 2, seen
    assert all(message and "waiting for approval" in message for _p, _t, message in seen)
    assert [p for p, _t, _m in seen] == sorted(p for p, _t, _m in seen)
