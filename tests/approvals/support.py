"""Helpers for the approvals tests: a private runtime directory, manifests, the CLI, audit."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import anyio.to_thread

from scoped_mcp.testing.harness import write_manifest
from tests.support import base_env, run_cli

AGENT_ID = "gated-01"
AGENT_TYPE = "gated"


def runtime_dir(tmp_path: Path) -> Path:
    """A private XDG_RUNTIME_DIR (0700) for one test, as systemd makes /run/user/UID.

    Directly under /tmp: a unix socket path has at most 107 bytes, and pytest's own directories
    are deep. The conftest removes it after the test.
    """
    digest = hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]
    path = Path("/tmp") / f"smcp-rt-{digest}"
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What the server child gets: a minimal environment with the private runtime directory."""
    return {"XDG_RUNTIME_DIR": str(runtime_dir(tmp_path)), **extra}


def cli_env(tmp_path: Path) -> dict[str, str]:
    """The environment of an operator's shell: same user, same runtime directory."""
    return base_env(tmp_path / "operator", XDG_RUNTIME_DIR=str(runtime_dir(tmp_path)))


def filesystem_manifest(
    tmp_path: Path, approvals: dict[str, Any], **blocks: Any
) -> tuple[Path, Path]:
    """A manifest with filesystem in write mode and ``approvals``; returns it and the data root."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    manifest = {
        "agent_type": AGENT_TYPE,
        "modules": {"filesystem": {"mode": "write", "config": {"base_path": str(data)}}},
        "approvals": approvals,
        **blocks,
    }
    return write_manifest(tmp_path / "gated.yml", manifest), data / "agents" / AGENT_ID


def cli(tmp_path: Path, *args: str) -> Any:
    """Run ``scoped-mcp approvals ARGS`` as the operator; return the completed process."""
    return run_cli("approvals", *args, env=cli_env(tmp_path))


def pending(tmp_path: Path) -> list[dict[str, Any]]:
    """The requests ``approvals list --json`` shows."""
    done = cli(tmp_path, "list", "--json")
    assert done.returncode == 0, done.stderr
    shown: list[dict[str, Any]] = json.loads(done.stdout)
    return shown


def wait_for_request(tmp_path: Path, tool: str, timeout: float = 30) -> dict[str, Any]:
    """Poll the CLI until a pending request for ``tool`` shows; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in pending(tmp_path) if r["tool"] == tool and r["state"] == "pending"]
        if found:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError(f"no pending request for {tool} within {timeout} s")


async def decide_when_requested(
    tmp_path: Path, tool: str, action: str, *extra: str
) -> dict[str, Any]:
    """In a worker thread: wait for the request, then ``approve``/``deny`` it with the CLI."""

    def work() -> dict[str, Any]:
        request = wait_for_request(tmp_path, tool)
        done = cli(tmp_path, action, request["id"], *extra)
        assert done.returncode == 0, done.stderr
        return request

    return await anyio.to_thread.run_sync(work)


def events(records: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") in names]
