"""``scoped-mcp audit tail``: readable lines, filters, -n, no colour off a tty, and --follow."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.audit.helpers import open_log
from tests.support import SCOPED_MCP, base_env, run_cli


def _mixed_log(path: Path) -> None:
    log = open_log(path)
    log.record("server_start", manifest="/m.yml", tools=["probe_echo"])
    log.record("tool_call", module="probe", tool="probe_echo", mode="read", outcome="ok",
               duration_ms=0.25)  # fmt: skip
    log.record("tool_call", module="fs", tool="fs_read_file", mode="read", outcome="denied",
               duration_ms=0.02, error="path leaves your directory")  # fmt: skip
    log.record("credential", action="issued", key=["PG_USER", "PG_PASSWORD"],
               backend="vault-dynamic", source="vault-dynamic:database/creds/r")  # fmt: skip
    log.close()


def _tail(path: Path, *options: str, home: Path) -> list[str]:
    result = run_cli("audit", "tail", str(path), *options, env=base_env(home))
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_tail_prints_one_readable_line_per_record(tmp_path: Path) -> None:
    """Each record is one line with time, agent, event and its key facts; no chain fields."""
    path = tmp_path / "a.jsonl"
    _mixed_log(path)
    out = _tail(path, home=tmp_path / "home")
    assert len(out) == 4
    assert "audit-01  tool_call   probe_echo (read) ok 0.25 ms" in out[1]
    assert out[2].endswith("denied 0.02 ms  path leaves your directory")
    assert "issued PG_USER,PG_PASSWORD  backend=vault-dynamic" in out[3]
    assert not any("prev=" in line or "seq=" in line or "\x1b[" in line for line in out)


def test_tail_filters_and_count(tmp_path: Path) -> None:
    """--outcome, --event and --agent select records; -n keeps the last N of those."""
    path = tmp_path / "a.jsonl"
    _mixed_log(path)
    home = tmp_path / "home"
    assert len(_tail(path, "--outcome", "denied", home=home)) == 1
    assert len(_tail(path, "--event", "tool_call", home=home)) == 2
    assert _tail(path, "--agent", "someone-else", home=home) == []
    [last] = _tail(path, "--event", "tool_call", "-n", "1", home=home)
    assert "fs_read_file" in last


def test_tail_follow_prints_records_as_they_arrive(tmp_path: Path) -> None:
    """--follow prints a record appended after it started, including after a rotation."""
    path = tmp_path / "a.jsonl"
    _mixed_log(path)
    proc = subprocess.Popen(
        [SCOPED_MCP, "audit", "tail", str(path), "-n", "1", "--follow"],
        env=base_env(tmp_path / "home"),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "credential" in proc.stdout.readline()
        log = open_log(path, max_bytes=4096, keep=2)
        log.record("tool_call", tool="late_call", outcome="error", duration_ms=1.0)
        assert "late_call" in proc.stdout.readline()
        log.record("x" * 10, filler="y" * 5000)
        log.record("tool_call", tool="after_rotation", outcome="ok", duration_ms=1.0)
        log.close()
        deadline = time.monotonic() + 10
        seen = ""
        while "after_rotation" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.readline()
        assert "after_rotation" in seen
    finally:
        proc.terminate()
        proc.wait(10)


def test_tail_shows_call_start_and_audit_gap_briefly(tmp_path: Path) -> None:
    """A call_start is its tool, mode and 'started' (no digest); an audit_gap says what was lost."""
    path = tmp_path / "a.jsonl"
    log = open_log(path)
    log.record("call_start", module="probe", tool="probe_echo", mode="write",
               args={"sha256": "ab" * 32, "shape": {}})  # fmt: skip
    log.record("audit_gap", since="2026-11-24T05:40:02.118313Z", error="disk full",
               lost={"call_start": 2, "tool_call": 2})  # fmt: skip
    log.close()
    out = _tail(path, home=tmp_path / "home")
    assert out[0].endswith("call_start  probe_echo (write) started")
    assert out[1].endswith(
        "audit_gap   4 record(s) not written since 2026-11-24T05:40:02.118313Z (disk full)"
    )
