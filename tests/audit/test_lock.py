"""One writer per audit file: a second server with the same audit path refuses to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoped_mcp.errors import ConfigError
from scoped_mcp.testing.harness import write_manifest
from tests.audit.helpers import open_log, records, verify
from tests.contract_support import RawServer, child_env
from tests.support import run_cli


def _manifest(tmp_path: Path, audit: Path) -> Path:
    path = tmp_path / "m.yml"
    write_manifest(
        path,
        {
            "agent_type": "auditor",
            "modules": {"filesystem": {"mode": "read", "config": {"base_path": "data"}}},
            "audit": {"path": str(audit)},
        },
    )
    return path


def test_second_server_on_one_audit_path_exits_2_naming_the_first(tmp_path: Path) -> None:
    """Two real servers, one audit path: the second exits 2 and names the first one's pid; the
    first keeps its chain intact."""
    audit = tmp_path / "shared" / "a.jsonl"
    manifest = _manifest(tmp_path, audit)
    home = tmp_path / "home"
    env = child_env(home, AGENT_ID="a1", AGENT_TYPE="auditor")
    first = RawServer.start(["--manifest", str(manifest)], env=env, cwd=home)
    try:
        first.handshake()
        second = run_cli("--manifest", str(manifest), env=env)
        assert second.returncode == 2, second.stderr
        assert f"pid {first.process.pid}" in second.stderr
        assert str(audit) in second.stderr
        assert first.close() == 0
    finally:
        first.kill()
    events = [r["event"] for r in records(audit)]
    assert events == ["server_start", "server_stop"]
    assert verify(audit, home=home).returncode == 0


def test_lock_is_released_when_the_log_closes(tmp_path: Path) -> None:
    """In one process too a second log on the path is refused, until the first closes."""
    path = tmp_path / "a.jsonl"
    log = open_log(path)
    with pytest.raises(ConfigError, match=r"in use by another scoped-mcp server \(pid \d+\)"):
        open_log(path)
    log.close()
    open_log(path).close()


def test_lock_survives_rotation(tmp_path: Path) -> None:
    """After the live file is rotated away, the path is still locked by the server writing it."""
    path = tmp_path / "a.jsonl"
    log = open_log(path, max_bytes=200, keep=2)
    for i in range(5):
        log.record("tool_call", tool=f"probe_{i}", outcome="ok", duration_ms=0.1)
    assert path.with_name("a.jsonl.1").exists()
    with pytest.raises(ConfigError, match="in use"):
        open_log(path)
    log.close()
