"""The serving process is hardened before any secret is in memory: umask, core dumps, dumpable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.contract_support import RawServer
from tests.support import base_env


def test_serving_process_has_private_umask_and_no_core_dumps(tmp_path: Path) -> None:
    """A running server has umask 077 and a core-file limit of 0."""
    manifest = tmp_path / "m.yml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "agent_type": "build",
                "modules": {"filesystem": {"mode": "read", "config": {"base_path": str(tmp_path)}}},
            }
        )
    )
    env = base_env(tmp_path / "home", AGENT_ID="agent-01", AGENT_TYPE="build")
    server = RawServer.start(["--manifest", str(manifest)], env=env, cwd=tmp_path)
    try:
        server.handshake()
        status = Path(f"/proc/{server.process.pid}/status").read_text()
        limits = Path(f"/proc/{server.process.pid}/limits").read_text()
    finally:
        assert server.close() == 0
    assert "Umask:\t0077" in status
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"]


def test_harden_process_marks_the_process_non_dumpable() -> None:
    """After harden_process() the kernel reports the process as not dumpable."""
    code = (
        "import ctypes; from scoped_mcp.hardening import harden_process; "
        "failed = harden_process(); libc = ctypes.CDLL(None); "
        "print(failed, libc.prctl(3, 0, 0, 0, 0))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert done.stdout.split() == ["[]", "0"]
