"""Shared pieces of the sandbox tests: the escape server's manifest and reading its answers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from tests.fixtures.sandbox_mcp import SERVER
from tests.support import ServerHandle

TOOLS = {
    name: "read"
    for name in ("read_file", "list_dir", "fetch", "tunnel", "connect", "credential", "status")
} | {"write_file": "write", "hog": "read", "hog_abort": "read"}


def require_bwrap() -> None:
    """Skip (a failure in CI) when bubblewrap is missing, naming the package to install."""
    if shutil.which("bwrap") is None:
        pytest.skip("install bubblewrap (apt-get install bubblewrap) for the sandbox tests")


def digest(value: str | bytes) -> str:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).hexdigest()


def write_secrets(path: Path, token: str) -> None:
    path.write_text(yaml.safe_dump({"UP_TOKEN": token}))
    os.chmod(path, 0o600)


def escape_manifest(
    tmp_path: Path, *, sandbox: Any = None, ttl: float = 300, **config: Any
) -> Path:
    """A manifest with one ``up`` proxy to the escape server, its token from a secrets file."""
    write_secrets(tmp_path / "secrets.yml", config.pop("token", "sandbox-token-" + "0a1b2c3d"))
    module_config: dict[str, Any] = {
        "command": sys.executable,
        "args": [str(SERVER)],
        "env": {"LC_ALL": "C.UTF-8", "TOKEN_FILE": "${file:token}"},
        "files": {"token": "${cred:UP_TOKEN}"},
        "tools": TOOLS,
        "start_timeout": 60,
        **config,
    }
    if sandbox is not None:
        module_config["sandbox"] = sandbox
    manifest = {
        "agent_type": "research",
        "credentials": {"source": "file", "path": str(tmp_path / "secrets.yml"), "ttl": ttl},
        "modules": {
            "up": {
                "type": "scoped_mcp.modules.mcp_proxy:McpProxyModule",
                "mode": "write",
                "config": module_config,
            }
        },
    }
    path = tmp_path / "manifest.yml"
    path.write_text(yaml.safe_dump(manifest))
    return path


async def wait_until(condition: Callable[[], bool], seconds: float = 20) -> None:
    """Poll ``condition`` until it holds (a process's exit has no event to wait on here)."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - polling /proc, nothing to await
            await anyio.sleep(0.05)


def escape_processes() -> list[int]:
    """Pids of every running escape server (its script path is on its command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(SERVER).encode() in cmdline and b"bwrap" not in cmdline.split(b"\0")[0]:
            found.append(int(entry.name))
    return found


async def answer(server: ServerHandle, tool: str, **arguments: Any) -> Any:
    """A proxied call's structured content, or its text parsed as JSON."""
    result = await server.client.call_tool(f"up_{tool}", arguments)
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)  # type: ignore[union-attr]
