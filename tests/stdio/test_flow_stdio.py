"""Pipelined load over a real server's stdio: bounded memory, early answers, answers at a signal."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scoped_mcp.testing.harness import write_manifest
from tests.contract_support import INITIALIZED, RawServer, call, child_env, initialize

pytestmark = pytest.mark.stdio


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[RawServer, Path, Path]]:
    """A server (probe, filesystem write) after the handshake; its audit file and data dir."""
    data = tmp_path / "data"
    data.mkdir()
    modules = {
        "probe": {"type": "custom_modules.probe:ProbeModule", "mode": "write"},
        "filesystem": {"mode": "write", "config": {"base_path": str(data)}},
    }
    manifest = write_manifest(tmp_path / "m.yml", {"agent_type": "flow", "modules": modules})
    env = child_env(tmp_path / "home", AGENT_ID="flow-01", AGENT_TYPE="flow")
    server = RawServer.start(["--manifest", str(manifest)], env=env, cwd=tmp_path)
    try:
        # A loaded machine can take a while to start the server.
        server.ask(initialize(), timeout=60)
        server.send(INITIALIZED)
        audit = tmp_path / "home" / "state" / "scoped-mcp" / "audit" / "flow-01.jsonl"
        yield server, audit, data / "agents" / "flow-01"
    finally:
        server.kill()


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _write_lines(server: RawServer, lines: list[str]) -> threading.Thread:
    """Write ``lines`` from a thread (the server may stop reading while we read its answers)."""
    assert server.process.stdin is not None
    stdin = server.process.stdin

    def write() -> None:
        stdin.write("".join(lines))
        stdin.flush()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer


def _read_ids(server: RawServer, count: int, timeout: float = 60) -> list[Any]:
    deadline = time.monotonic() + timeout
    ids = []
    while len(ids) < count:
        reply = server.read(timeout=max(0.1, deadline - time.monotonic()))
        assert reply is not None, f"stdout ended after {len(ids)} answers"
        ids.append(reply.get("id"))
    return ids


def test_pipelined_pings_keep_memory_bounded(started: tuple[RawServer, Path, Path]) -> None:
    """5,000 pipelined pings raise the peak RSS by a bounded amount, not ~5 KB per ping."""
    server, _, _ = started
    before = _peak_rss_kib(server.process.pid)
    count = 5_000
    lines = [json.dumps({"jsonrpc": "2.0", "id": n, "method": "ping"}) + "\n" for n in range(count)]
    writer = _write_lines(server, lines)
    assert sorted(_read_ids(server, count)) == list(range(count))
    writer.join(timeout=10)
    growth_mib = (_peak_rss_kib(server.process.pid) - before) / 1024
    assert growth_mib < 10, f"peak RSS grew by {growth_mib:.1f} MiB"
    assert server.close() == 0


def test_first_answers_arrive_before_most_calls_finish(
    started: tuple[RawServer, Path, Path],
) -> None:
    """With 400 pipelined calls each answer is written as its call completes, not much later."""
    server, audit, _ = started
    count = 400
    lines = [json.dumps(call(100 + n, "probe_echo", text="x")) + "\n" for n in range(count)]
    before = _finished(audit)
    writer = _write_lines(server, lines)
    lag = []
    for answered in range(1, count + 1):
        assert server.read(timeout=60) is not None
        if answered in (1, 100, 200, 300):
            # tool_call records are appended as calls complete: their count is how many are done.
            lag.append(_finished(audit) - before - answered)
    writer.join(timeout=10)
    assert _finished(audit) - before == count
    assert max(lag) < 80, f"calls done but not answered: {lag}"
    assert server.close() == 0


def test_signal_under_load_answers_every_completed_call(
    started: tuple[RawServer, Path, Path],
) -> None:
    """At SIGTERM every call that completed (audited, file written) has its answer on stdout."""
    server, audit, files = started
    signum = signal.SIGTERM
    lines = [json.dumps(call(1000, "probe_nap", seconds=0.5)) + "\n"]
    for n in range(1, 301):
        arguments = {"path": f"f{n}.txt", "content": str(n)}
        lines.append(json.dumps(call(n, "filesystem_write_file", **arguments)) + "\n")
    writer = _write_lines(server, lines)
    _read_ids(server, 20)
    server.process.send_signal(signum)
    assert server.process.wait(timeout=15) == 0
    writer.join(timeout=10)
    server.drain()
    answers = {m["id"]: m for m in map(json.loads, server.stdout_lines) if "id" in m}
    written = {int(p.stem[1:]) for p in files.iterdir()}
    assert written, "no call completed before the signal"
    assert written <= {i for i, m in answers.items() if "result" in m}
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    audited_ok = [r for r in records if r["event"] == "tool_call" and r["outcome"] == "ok"]
    assert len(audited_ok) == len(written) + 1  # the nap completed within the bound, too
    assert answers[1000]["result"]["structuredContent"] == {"result": "rested"}
    assert records[-1] == {**records[-1], "event": "server_stop", "reason": f"signal {signum.name}"}


def test_signal_answers_a_call_still_running_after_the_bound(
    started: tuple[RawServer, Path, Path],
) -> None:
    """A call still running when the signal's short wait ends is answered with an error."""
    server, _, _ = started
    server.send(call(7, "probe_nap", seconds=60))
    time.sleep(0.3)
    began = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=15) == 0
    assert time.monotonic() - began < 8
    server.drain()
    answers = {m["id"]: m for m in map(json.loads, server.stdout_lines) if "id" in m}
    assert "error" in answers[7]


def test_signal_during_the_end_of_input_wait_shortens_it(
    started: tuple[RawServer, Path, Path],
) -> None:
    """Stdin closed while a call runs, then SIGTERM: the signal's short bound applies."""
    server, _, _ = started
    server.send(call(8, "probe_nap", seconds=60))
    time.sleep(0.3)
    assert server.process.stdin is not None
    server.process.stdin.close()
    time.sleep(0.3)
    began = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=15) == 0
    assert time.monotonic() - began < 8
    server.drain()
    answers = {m["id"]: m for m in map(json.loads, server.stdout_lines) if "id" in m}
    assert "error" in answers[8]


def _finished(audit: Path) -> int:
    """How many ``tool_call`` records (calls that ended) the audit file holds."""
    return sum('"event":"tool_call"' in line for line in audit.read_text().splitlines())
