"""The gate's rules and bindings, through the real pipeline in-process (the public module harness).

Decisions are applied with ``ApprovalGate.decide``, the function the control socket and the
Matrix channel call; the stdio tests drive the same paths through the CLI and Synapse.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp.exceptions import ToolError

from scoped_mcp.approvals.channels.matrix import answers
from scoped_mcp.approvals.config import ApprovalsSpec
from scoped_mcp.approvals.errors import DecisionRefused
from scoped_mcp.approvals.gate import ApprovalGate
from scoped_mcp.approvals.rules import Rules
from scoped_mcp.testing.harness import ModuleHarness, module_harness
from tests.approvals.support import runtime_dir

pytestmark = pytest.mark.anyio
WRITE = "filesystem_write_file"


def test_first_matching_rule_wins_and_defaults_fill_in() -> None:
    """Globs, modules and mode select; the first match decides; the block's defaults fill gaps."""
    spec = ApprovalsSpec.model_validate(
        {
            "wait": 7,
            "lifetime": 70,
            "rules": [
                {"tools": ["filesystem_delete_*"], "wait": 1},
                {"modules": ["smtp"], "approvers": {"cli": True}},
                {"mode": "write", "lifetime": 99},
            ],
        }
    )
    rules = Rules(spec)
    delete = rules.match(module="filesystem", tool="filesystem_delete_file", mode="write")
    assert delete is not None
    assert (delete.index, delete.wait, delete.lifetime, delete.notify) == (0, 1, 70, ("cli",))
    smtp = rules.match(module="smtp", tool="smtp_send", mode="write")
    assert smtp is not None
    assert smtp.index == 1
    write = rules.match(module="filesystem", tool="filesystem_write_file", mode="write")
    assert write is not None
    assert (write.index, write.wait, write.lifetime) == (2, 7, 99)
    assert rules.match(module="filesystem", tool="filesystem_read_file", mode="read") is None


@asynccontextmanager
async def gated(tmp_path: Path, approvals: dict[str, Any]) -> AsyncIterator[ModuleHarness]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    async with module_harness(
        tmp_path,
        "filesystem",
        {"base_path": str(data)},
        mode="write",
        env={"XDG_RUNTIME_DIR": str(runtime_dir(tmp_path))},
        manifest={"approvals": approvals},
    ) as harness:
        yield harness


def gate_of(harness: ModuleHarness) -> ApprovalGate:
    gate = harness.runtime.approvals
    assert gate is not None
    return gate


async def wait_pending(gate: ApprovalGate, count: int = 1) -> list[Any]:
    with anyio.fail_after(30):
        while True:
            found = [r for r in gate.store if r.state == "pending"]
            if len(found) >= count:
                return found
            await anyio.sleep(0.02)


async def test_two_identical_held_calls_share_one_request_and_only_one_runs(
    tmp_path: Path,
) -> None:
    """One approval, two identical calls waiting on it: exactly one runs, the other is refused."""
    async with gated(tmp_path, {"wait": 30, "rules": [{"tools": [WRITE]}]}) as harness:
        gate = gate_of(harness)
        outcomes: list[str] = []

        async def call() -> None:
            try:
                await harness.call("write_file", path="one.txt", content="once")
                outcomes.append("ran")
            except ToolError as exc:
                outcomes.append(str(exc))

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            group.start_soon(call)
            (request,) = await wait_pending(gate)
            await anyio.sleep(0.2)
            assert len(list(gate.store)) == 1, "the second call waits on the same request"
            gate.decide(request.id, "approve", channel="cli", approver="tester")
        assert outcomes.count("ran") == 1
        (refused,) = [o for o in outcomes if o != "ran"]
        assert f"approval {request.id} was used by another identical call" in refused
        records = harness.audit.records
    ok = [r for r in records if r.get("event") == "tool_call" and r.get("outcome") == "ok"]
    assert len(ok) == 1


async def test_decisions_are_refused_when_not_theirs_to_make(tmp_path: Path) -> None:
    """Unknown id, a Matrix sender not listed, the CLI where the rule forbids it, a second
    decision: each is refused and changes nothing."""
    approvals = {
        "wait": 0.2,
        "channels": {"matrix": {"room": "!room:example.org"}},
        "approvers": {"cli": False, "matrix": ["@alice:example.org"]},
        "rules": [{"tools": [WRITE], "notify": ["cli"]}],
    }
    env = {
        "XDG_RUNTIME_DIR": str(runtime_dir(tmp_path)),
        "MATRIX_HOMESERVER": "http://127.0.0.1:9",
        "MATRIX_ACCESS_TOKEN": "syt_unused_in_this_test",
    }
    data = tmp_path / "data"
    data.mkdir()
    async with module_harness(
        tmp_path,
        "filesystem",
        {"base_path": str(data)},
        mode="write",
        env=env,
        manifest={"approvals": approvals},
    ) as harness:
        gate = gate_of(harness)
        refusal = await harness.refuse("write_file", path="x.txt", content="x")
        (request,) = list(gate.store)
        assert f"pending approval {request.id}" in refusal
        attempts = [
            ("0123456789", "approve", "cli", "tester", "no request 0123456789"),
            (request.id, "approve", "matrix", "@mallory:example.org", "cannot be decided by"),
            (request.id, "approve", "cli", "root", "cannot be decided by"),
        ]
        for request_id, op, channel, approver, expected in attempts:
            with pytest.raises(DecisionRefused, match=expected):
                gate.decide(request_id, op, channel=channel, approver=approver)
            assert request.state == "pending"
        gate.decide(request.id, "deny", channel="matrix", approver="@alice:example.org")
        with pytest.raises(DecisionRefused, match="is denied, not pending"):
            gate.decide(request.id, "approve", channel="matrix", approver="@alice:example.org")
    assert not list(data.rglob("x.txt"))


def test_only_whole_answer_messages_count() -> None:
    """``answers`` reads ``approve ID`` / ``deny ID reason`` exactly; anything else is ignored."""
    room = "!r:example.org"
    bodies = [
        ("@a:x", "approve 0123456789"),
        ("@a:x", "  deny abcdefabcd   not   now  "),
        ("@a:x", "please approve 0123456789"),
        ("@a:x", "approve 0123456789; and more"),
        ("@a:x", "approve 012345678"),
        ("@a:x", "APPROVE 0123456789"),
        (5, "approve 0123456789"),
    ]
    events: list[Any] = [
        {"type": "m.room.message", "sender": s, "content": {"body": b}} for s, b in bodies
    ]
    events += [
        {"type": "m.room.member", "sender": "@a:x", "content": {"body": "approve 0123456789"}},
        {"type": "m.room.message", "sender": "@a:x", "content": "approve 0123456789"},
        "junk",
    ]
    body = {"rooms": {"join": {room: {"timeline": {"events": events}}}}}
    assert answers(body, room) == [
        ("@a:x", "approve", "0123456789", None),
        ("@a:x", "deny", "abcdefabcd", "not now"),
    ]
    assert answers({"rooms": "nonsense"}, room) == []
    assert answers(None, room) == []
