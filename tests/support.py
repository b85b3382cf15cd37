"""Test support: run the real server as a subprocess and talk MCP to it over stdio."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from fastmcp.exceptions import ToolError

SCOPED_MCP = shutil.which("scoped-mcp") or str(Path(sys.executable).with_name("scoped-mcp"))


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """A minimal, explicit environment for a server child: no ambient secrets leak in."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "LANG": "C.UTF-8",
    }
    env.update(extra)
    return env


@dataclass
class ServerHandle:
    """A connected client plus where the server writes its audit log and stderr."""

    client: Client[Any]
    stderr_path: Path
    audit_path: Path

    async def call(self, tool: str, arguments: dict[str, Any] | None = None) -> Any:
        """Call a tool and return its data; raises ToolError for an error result."""
        result = await self.client.call_tool(tool, arguments or {})
        return result.data

    async def error(self, tool: str, arguments: dict[str, Any] | None = None) -> str:
        """Call a tool that must fail; return the error text the agent sees."""
        try:
            await self.client.call_tool(tool, arguments or {})
        except ToolError as exc:
            return str(exc)
        raise AssertionError(f"{tool} unexpectedly succeeded with {arguments!r}")

    async def tool_names(self) -> list[str]:
        return sorted(tool.name for tool in await self.client.list_tools())

    def audit_records(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines() if line]

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""


@asynccontextmanager
async def running_server(
    manifest: Path,
    *,
    agent_id: str,
    agent_type: str,
    extra_env: dict[str, str],
    home: Path,
    client_options: dict[str, Any] | None = None,
) -> AsyncIterator[ServerHandle]:
    env = base_env(home, AGENT_ID=agent_id, AGENT_TYPE=agent_type, **extra_env)
    stderr_path = home / f"stderr-{agent_id}.log"
    audit_path = home / "state" / "scoped-mcp" / "audit" / f"{agent_id}.jsonl"
    with stderr_path.open("a") as stderr_file:
        transport = StdioTransport(
            command=SCOPED_MCP,
            args=["--manifest", str(manifest)],
            env=env,
            cwd=str(home),
            log_file=stderr_file,
            # One server per context, as an agent host runs it: closing the client closes the
            # server's stdin and waits for it to exit (shutdown, revocation, server_stop).
            keep_alive=False,
        )
        async with Client(transport, **(client_options or {})) as client:
            yield ServerHandle(client=client, stderr_path=stderr_path, audit_path=audit_path)


def run_cli(
    *args: str, env: dict[str, str], input_text: str = "", timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run the scoped-mcp command as a user would, capturing stdout and stderr separately."""
    return subprocess.run(
        [SCOPED_MCP, *args],
        env=env,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def tree_snapshot(
    top: Path, *, skip: tuple[Path, ...] = (), dir_mtime: bool = True
) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``top``: kind, content or link target, and mtime (links not followed).

    ``dir_mtime=False`` leaves directory mtimes out, for trees where a server may legitimately
    create entries in a directory that is otherwise compared.
    """
    result: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if any(path == s or s in path.parents for s in skip):
                continue
            info = path.lstat()
            if path.is_symlink():
                result[str(path)] = ("link", os.readlink(path))
            elif path.is_file():
                result[str(path)] = ("file", path.read_bytes(), info.st_mtime_ns)
            elif dir_mtime:
                result[str(path)] = ("other", info.st_mode, info.st_mtime_ns)
            else:
                result[str(path)] = ("dir", info.st_mode)
    return result


def bound_tool(
    module: Any,
    spec: Any,
    *,
    module_key: str,
    tool_name: str,
    audit: Any,
    redactor: Any,
) -> Callable[..., Awaitable[Any]]:
    """What FastMCP calls with the validated arguments of one ``@tool`` method: the real call
    pipeline around it."""
    from scoped_mcp.pipeline import Pipeline

    tool: Any = Pipeline(audit, redactor).bind(
        module, spec, module_key=module_key, tool_name=tool_name
    )
    return bound_call(tool)


def bound_call(tool: Any) -> Callable[..., Awaitable[Any]]:
    """A ``BoundTool``'s pipeline call as a function of keyword arguments (FastMCP's ``fn``
    finds it through a context variable that only ``run`` sets)."""

    async def call(**arguments: Any) -> Any:
        return await tool.call(arguments)

    return call


def pause_process(pid: int, *, timeout: float = 5.0) -> None:
    """SIGSTOP ``pid`` and wait until every one of its threads has stopped.

    The signal takes effect per thread, when each is next scheduled: on a loaded machine a
    multi-threaded server (OpenBao, Redis) went on answering for up to ~12 ms after kill(),
    long enough for a request sent right after it to be served.
    """
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    tasks = Path(f"/proc/{pid}/task")
    while time.monotonic() < deadline:
        states = []
        for task in tasks.iterdir():
            try:
                states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue  # a thread that ended meanwhile
        if states and all(state in ("T", "t") for state in states):
            return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} did not stop within {timeout}s after SIGSTOP")
