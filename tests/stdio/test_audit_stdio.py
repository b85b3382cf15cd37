"""The audit trail as written by a real server: where, with which permissions, which records."""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from scoped_mcp.testing.harness import write_manifest
from tests.contract_support import FIXTURES, RawServer, call, child_env
from tests.support import ServerHandle, run_cli, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
CALL_FIELDS = {
    "timestamp",
    "agent_id",
    "agent_type",
    "event",
    "module",
    "tool",
    "mode",
    "outcome",
    "duration_ms",
    "args",
    "seq",
    "prev",
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """One event loop for the module, so one server serves many tests."""
    return "asyncio"


@dataclass
class Audited:
    """The shared server and its files."""

    server: ServerHandle
    home: Path
    data: Path


@pytest.fixture(scope="module")
async def audited(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Audited]:
    """A server with filesystem (write) and probe (write), auditing to the default location."""
    top = tmp_path_factory.mktemp("audit")
    manifest = top / "audit.yml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "agent_type": "auditor",
                "modules": {
                    "filesystem": {"mode": "write", "config": {"base_path": "data"}},
                    "probe": {"type": "custom_modules.probe:ProbeModule", "mode": "write"},
                },
            }
        )
    )
    home = top / "home"
    async with running_server(
        manifest,
        agent_id="audit-01",
        agent_type="auditor",
        extra_env={"PYTHONPATH": str(FIXTURES)},
        home=home,
    ) as server:
        yield Audited(server, home, top / "data")


def _lines(server: ServerHandle) -> list[str]:
    return server.audit_path.read_text().splitlines()


async def test_default_path_is_under_xdg_state_home(audited: Audited) -> None:
    """Without audit.path the log is $XDG_STATE_HOME/scoped-mcp/audit/{agent_id}.jsonl."""
    expected = audited.home / "state" / "scoped-mcp" / "audit" / "audit-01.jsonl"
    assert audited.server.audit_path == expected
    assert expected.is_file()


async def test_file_is_0600_and_directories_0700(audited: Audited) -> None:
    """The audit file is readable only by its owner, and so are the directories created for it."""
    path = audited.server.audit_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


async def test_server_start_record_lists_manifest_and_tools(audited: Audited) -> None:
    """The first record is server_start with the identity, the manifest path and the tools."""
    first = audited.server.audit_records()[0]
    assert first["event"] == "server_start"
    assert (first["agent_id"], first["agent_type"]) == ("audit-01", "auditor")
    assert first["manifest"].endswith("audit.yml")
    assert "filesystem_write_file" in first["tools"]
    assert "probe_store" in first["tools"]
    assert TIMESTAMP.match(first["timestamp"])


async def test_one_complete_record_per_call(audited: Audited) -> None:
    """Each tool call appends exactly one record with identity, tool, mode, outcome and timing
    (after its call_start, written before the body ran, with the same tool and digest)."""
    before = len(_lines(audited.server))
    await audited.server.call("probe_echo", {"text": "a"})
    await audited.server.call("probe_store", {"key": "k", "value": "v"})
    written = [json.loads(line) for line in _lines(audited.server)[before:]]
    assert [r["event"] for r in written] == ["call_start", "tool_call"] * 2
    for start, end in (written[0:2], written[2:4]):
        assert (start["tool"], start["args"]) == (end["tool"], end["args"])
    records = written[1::2]
    for record in records:
        assert set(record) == CALL_FIELDS
        assert record["event"] == "tool_call"
        assert (record["agent_id"], record["agent_type"]) == ("audit-01", "auditor")
        assert record["outcome"] == "ok"
        assert TIMESTAMP.match(record["timestamp"])
        assert isinstance(record["duration_ms"], int | float)
        assert record["duration_ms"] >= 0
        assert re.fullmatch(r"[0-9a-f]{64}", record["args"]["sha256"])
    assert [(r["module"], r["tool"], r["mode"]) for r in records] == [
        ("probe", "probe_echo", "read"),
        ("probe", "probe_store", "write"),
    ]
    assert records[1]["args"]["shape"] == {
        "key": {"type": "str", "len": 1},
        "value": {"type": "str", "len": 1},
    }


async def test_argument_values_never_reach_the_audit_file(audited: Audited) -> None:
    """The audit keeps a digest and sizes of the arguments, never their values."""
    before = len(_lines(audited.server))
    await audited.server.call(
        "filesystem_write_file", {"path": "secretname-XQ7.txt", "content": "TOPSECRETCONTENT"}
    )
    text = "\n".join(_lines(audited.server)[before:])
    assert "TOPSECRETCONTENT" not in text
    assert "secretname-XQ7" not in text
    record = json.loads(text.splitlines()[-1])
    assert record["args"]["shape"]["content"] == {"type": "str", "len": 16}


async def test_same_arguments_give_the_same_digest(audited: Audited) -> None:
    """The argument digest is deterministic, so two identical calls can be matched."""
    await audited.server.call("probe_echo", {"text": "same", "times": 2})
    await audited.server.call("probe_echo", {"times": 2, "text": "same"})
    await audited.server.call("probe_echo", {"text": "other", "times": 2})
    calls = [r for r in audited.server.audit_records() if r["event"] == "tool_call"]
    digests = [r["args"]["sha256"] for r in calls[-3:]]
    assert digests[0] == digests[1] != digests[2]


async def test_invalid_arguments_are_audited_as_denied_without_values(audited: Audited) -> None:
    """A call rejected for its arguments is audited as denied, naming the tool, not the values."""
    before = len(_lines(audited.server))
    text = await audited.server.error(
        "filesystem_write_file", {"path": "LEAKYPATHVALUE", "content": 12345}
    )
    assert text.startswith("invalid arguments")
    assert "12345" not in text
    [line] = _lines(audited.server)[before:]
    record = json.loads(line)
    assert (record["tool"], record["outcome"]) == ("filesystem_write_file", "denied")
    assert record["error"].startswith("invalid arguments")
    assert "LEAKYPATHVALUE" not in line
    assert "12345" not in line


async def test_unknown_tool_is_audited_as_denied(audited: Audited) -> None:
    """A call to a tool that does not exist for this agent is audited as denied."""
    before = len(_lines(audited.server))
    assert await audited.server.error("sqlite_execute", {"sql": "DROP TABLE x"}) == "unknown tool"
    [line] = _lines(audited.server)[before:]
    record = json.loads(line)
    assert (record["tool"], record["outcome"], record["error"]) == (
        "sqlite_execute",
        "denied",
        "unknown tool",
    )
    assert "DROP TABLE" not in line


async def test_concurrent_calls_write_whole_lines(audited: Audited) -> None:
    """Fifty calls at once give exactly fifty well-formed records, none torn or merged."""
    before = len(_lines(audited.server))
    results: list[Any] = []

    async def one(i: int) -> None:
        results.append(await audited.server.call("probe_echo", {"text": f"c{i:02d}-" * 50}))

    async with anyio.create_task_group() as group:
        for i in range(50):
            group.start_soon(one, i)
    assert len(results) == 50
    new = _lines(audited.server)[before:]
    assert len(new) == 100  # a call_start and a tool_call each
    records = [json.loads(line) for line in new if '"event":"tool_call"' in line]
    assert len(records) == 50
    assert all(r["tool"] == "probe_echo" and r["outcome"] == "ok" for r in records)
    assert len({r["args"]["sha256"] for r in records}) == 50


# --- audit.path in the manifest -------------------------------------------------------------------


def _quick_session(tmp_path: Path, manifest: dict[str, Any]) -> tuple[int, RawServer]:
    path = tmp_path / "m.yml"
    write_manifest(path, manifest)
    env = child_env(tmp_path / "home", AGENT_ID="ovr-01", AGENT_TYPE="ovr")
    server = RawServer.start(["--manifest", str(path)], env=env, cwd=tmp_path)
    try:
        server.handshake()
        server.ask(call(2, "probe_echo", text="x"))
        code = server.close()
    finally:
        server.kill()
    return code, server


def test_manifest_audit_path_overrides_the_default(tmp_path: Path) -> None:
    """audit.path (relative to the manifest) replaces the default location, same format and mode."""
    manifest = {
        "agent_type": "ovr",
        "audit": {"path": "logs/custom.jsonl"},
        "modules": {"probe": {"type": "custom_modules.probe:ProbeModule"}},
    }
    code, _ = _quick_session(tmp_path, manifest)
    assert code == 0
    path = tmp_path / "logs" / "custom.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    events = [json.loads(line)["event"] for line in path.read_text().splitlines()]
    assert events == ["server_start", "call_start", "tool_call", "server_stop"]
    assert not (tmp_path / "home" / "state" / "scoped-mcp").exists()


def test_existing_audit_file_is_appended_and_made_private(tmp_path: Path) -> None:
    """An existing audit file keeps its records, gets new ones appended, and is chmod 0600."""
    path = tmp_path / "a.jsonl"
    path.write_text('{"event":"older"}\n')
    path.chmod(0o644)
    manifest = {
        "agent_type": "ovr",
        "audit": {"path": str(path)},
        "modules": {"probe": {"type": "custom_modules.probe:ProbeModule"}},
    }
    assert _quick_session(tmp_path, manifest)[0] == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text().splitlines()[0]) == {"event": "older"}
    assert len(path.read_text().splitlines()) == 5


@pytest.mark.parametrize("kind", ["symlink", "not-a-directory"])
def test_unusable_audit_path_is_a_clean_refusal(tmp_path: Path, kind: str) -> None:
    """An audit path that is a symlink or cannot be created refuses start-up with exit 2."""
    target = tmp_path / "elsewhere.jsonl"
    if kind == "symlink":
        audit = tmp_path / "a.jsonl"
        os.symlink(target, audit)
    else:
        (tmp_path / "file").write_text("")
        audit = tmp_path / "file" / "a.jsonl"
    manifest = tmp_path / "m.yml"
    manifest.write_text(
        yaml.safe_dump({"agent_type": "ovr", "audit": {"path": str(audit)}, "modules": {}})
    )
    env = child_env(tmp_path / "home", AGENT_ID="ovr-01", AGENT_TYPE="ovr")
    result = run_cli("--manifest", str(manifest), env=env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert str(audit) in result.stderr
    assert "audit" in result.stderr
    assert "Traceback" not in result.stderr
    assert not target.exists()


def test_cancelled_call_is_not_audited_as_ok(tmp_path: Path) -> None:
    """A call the client cancels mid-flight is audited as an error, never as a success."""
    path = tmp_path / "m.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "agent_type": "ovr",
                "modules": {"probe": {"type": "custom_modules.probe:ProbeModule"}},
            }
        )
    )
    env = child_env(tmp_path / "home", AGENT_ID="ovr-01", AGENT_TYPE="ovr")
    server = RawServer.start(["--manifest", str(path)], env=env, cwd=tmp_path)
    try:
        server.handshake()
        server.send(call(3, "probe_nap", seconds=30))
        time.sleep(0.3)
        cancel = {"requestId": 3, "reason": "user pressed stop"}
        server.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel})
        server.ask(call(4, "probe_echo", text="after"))
        assert server.close() == 0
    finally:
        server.kill()
    audit = tmp_path / "home" / "state" / "scoped-mcp" / "audit" / "ovr-01.jsonl"
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    [nap] = [r for r in records if r.get("tool") == "probe_nap" and r["event"] == "tool_call"]
    assert nap["outcome"] == "error"
    assert nap["error"] == "cancelled before completion"
    assert nap["duration_ms"] < 10_000
