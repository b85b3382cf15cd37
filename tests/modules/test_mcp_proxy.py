"""mcp_proxy in process, against a real FastMCP upstream run as a child (or over loopback HTTP).

The server is assembled by ``server.build`` from a manifest and driven through an in-memory MCP
client, so every call passes the real pipeline (audit, redaction, error boundary).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from pydantic import ValidationError

from scoped_mcp import server
from scoped_mcp.errors import ModuleLoadError
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import load
from scoped_mcp.modules.mcp_proxy import McpProxyConfig, McpProxyModule
from scoped_mcp.testing.harness import write_manifest
from tests.fixtures.upstream_mcp import SERVER, pid_state

pytestmark = pytest.mark.anyio
TOKEN = "upstream-token-" + "9f8e7d6c5b4a"
TOOLS = {"whoami": "read", "echo_env_names": "read", "fail_with_token": "read"}


def stdio_config(**extra: Any) -> dict[str, Any]:
    return {
        "command": sys.executable,
        "args": [str(SERVER)],
        "env": {"UPSTREAM_TOKEN": "${cred:UP_TOKEN}", "LC_ALL": "C.UTF-8", "MARKER": "plain"},
        "tools": {**TOOLS, "write_thing": "write"},
        "start_timeout": 20,
        # These tests pin the proxy's own behaviour (pids, restarts, the exact environment);
        # the sandboxed child is covered in tests/modules/mcp_proxy_sandbox/.
        "sandbox": "off",
        **extra,
    }


def data(result: Any) -> Any:
    """What a proxied call returned: its structured content, or its text (parsed if JSON)."""
    if result.structured_content is not None:
        return result.structured_content
    text = result.content[0].text
    try:
        return json.loads(text)
    except ValueError:
        return text


async def wait_until(condition: Callable[[], bool], seconds: float = 5) -> None:
    """Poll ``condition`` until it holds (a child's exit has no event to wait on)."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - polling /proc, nothing to await
            await anyio.sleep(0.05)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@asynccontextmanager
async def proxied(
    tmp_path: Path, config: dict[str, Any], *, mode: str = "read"
) -> AsyncIterator[tuple[Client[Any], server.Runtime]]:
    """A started runtime with one ``up`` proxy module and a client connected to it."""
    path = tmp_path / "manifest.yml"
    module = {"type": "scoped_mcp.modules.mcp_proxy:McpProxyModule", "mode": mode}
    manifest = {
        "agent_type": "research",
        "modules": {"up": {**module, "config": config}},
        "credentials": {"source": "env"},
        "audit": {"path": str(tmp_path / "audit.jsonl")},
    }
    write_manifest(path, manifest)
    runtime = server.build(load(path), AgentContext("agent-01", "research"), {"UP_TOKEN": TOKEN})
    await server.start_modules(runtime)
    try:
        async with Client(runtime.mcp) as client:
            yield client, runtime
    finally:
        await server.stop_modules(runtime)


def proxy_of(runtime: server.Runtime) -> McpProxyModule:
    module = dict(runtime.modules)["up"]
    assert isinstance(module, McpProxyModule)
    return module


async def test_only_allowlisted_tools_exist_and_read_mode_hides_writes(tmp_path: Path) -> None:
    """Read mode lists the allowlisted read tools only, with the upstream's schema and text."""
    async with proxied(tmp_path, stdio_config()) as (client, _):
        tools = {tool.name: tool for tool in await client.list_tools()}
        with pytest.raises(ToolError):
            await client.call_tool("up_not_allowed", {})
    assert sorted(tools) == ["up_echo_env_names", "up_fail_with_token", "up_whoami"]
    assert (tools["up_whoami"].description or "").startswith("The sha256 of the token")


async def test_write_mode_adds_write_tools_with_their_schema(tmp_path: Path) -> None:
    """Write mode adds write_thing, whose input schema is the upstream's and whose call works."""
    async with proxied(tmp_path, stdio_config(), mode="write") as (client, _):
        tools = {tool.name: tool for tool in await client.list_tools()}
        result = await client.call_tool("up_write_thing", {"name": "x"})
    assert "up_not_allowed" not in tools
    assert tools["up_write_thing"].input_schema["required"] == ["name"]
    assert data(result) == "created x"


async def test_child_gets_exactly_the_configured_environment(tmp_path: Path) -> None:
    """The child sees only the variables in config.env (no PATH, HOME...) and the leased token."""
    async with proxied(tmp_path, stdio_config()) as (client, _):
        names = data(await client.call_tool("up_echo_env_names", {}))
        who = data(await client.call_tool("up_whoami", {}))
    assert names == ["LC_ALL", "MARKER", "UPSTREAM_TOKEN"]
    assert who["token_sha256"] == digest(TOKEN)


async def test_upstream_error_echoing_its_token_is_redacted(tmp_path: Path) -> None:
    """The upstream's error text reaches the agent, its token replaced by [REDACTED]."""
    async with proxied(tmp_path, stdio_config()) as (client, _):
        with pytest.raises(ToolError) as caught:
            await client.call_tool("up_fail_with_token", {})
    assert "authentication failed for token [REDACTED]" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in (tmp_path / "audit.jsonl").read_text()


async def test_shutdown_stops_and_reaps_the_child(tmp_path: Path) -> None:
    """After shutdown the child's pid no longer exists, not even as a zombie."""
    async with proxied(tmp_path, stdio_config()) as (client, runtime):
        pid = data(await client.call_tool("up_whoami", {}))["pid"]
        assert pid_state(pid) not in (None, "Z")
        upstream = proxy_of(runtime).upstream
        assert upstream is not None
        assert upstream.current is not None
        assert upstream.current.pid == pid
    assert pid_state(pid) is None


async def test_a_dead_child_is_restarted_on_the_next_call(tmp_path: Path) -> None:
    """Once a dead child's exit is seen, the next call runs on a fresh one."""
    async with proxied(tmp_path, stdio_config()) as (client, runtime):
        first = data(await client.call_tool("up_whoami", {}))["pid"]
        upstream = proxy_of(runtime).upstream
        assert upstream is not None
        connection = upstream.current
        assert connection is not None
        os.kill(first, signal.SIGKILL)
        # A call racing the death fails once; the proxy notices at the child's stdout EOF.
        await wait_until(lambda: not connection.alive())
        second = data(await client.call_tool("up_whoami", {}))["pid"]
    assert second != first
    assert pid_state(first) is None


async def test_allowlisted_tool_missing_upstream_stops_start_up(tmp_path: Path) -> None:
    """An allowlisted tool the upstream lacks is a start-up error naming it; no child remains."""
    config = stdio_config(tools={"whoami": "read", "delete_everything": "write"})
    with pytest.raises(ModuleLoadError, match="delete_everything") as caught:
        async with proxied(tmp_path, config):
            pass
    assert "whoami" in (caught.value.fix or "")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"tools": {"a": "read"}}, "exactly one of"),
        ({"command": "x", "url": "https://h/mcp", "tools": {"a": "read"}}, "exactly one of"),
        ({"command": "x", "tools": {}}, "at least 1"),
        ({"command": "x", "tools": {"a": "admin"}}, "read"),
        ({"command": "x", "env": {"T": "${GH_TOKEN}"}, "tools": {"a": "read"}}, "cred:KEY"),
        ({"command": "x", "env": {"A-B": "1"}, "tools": {"a": "read"}}, "variable name"),
        ({"command": "x", "headers": {"A": "b"}, "tools": {"a": "read"}}, "'url' upstream"),
        ({"url": "http://example.com/mcp", "tools": {"a": "read"}}, "loopback"),
        ({"url": "https://u:p@example.com/", "tools": {"a": "read"}}, "user info"),
        ({"url": "https://h/", "headers": {"X": "a\nb"}, "tools": {"a": "read"}}, "header"),
    ],
)
def test_config_refusals(config: dict[str, Any], message: str) -> None:
    """Malformed upstream settings are refused with a message naming the problem."""
    with pytest.raises(ValidationError, match=message):
        McpProxyConfig.model_validate(config)


def test_credential_keys_are_read_from_the_templates() -> None:
    """Keys named by ${cred:KEY} in env or headers are the module's required credentials."""
    config = McpProxyConfig.model_validate(
        {"url": "https://h/mcp", "headers": {"A": "Bearer ${cred:T1}", "B": "${cred:T2}"}}
        | {"tools": {"a": "read"}}
    )
    assert McpProxyModule.declared_credentials(config) == (("T1", "T2"), ())


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def http_upstream(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """The fixture server on a loopback port over streamable HTTP; returns its URL."""
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        port = free_port()
        log = (tmp_path / "upstream-http.log").open("ab")
        processes.append(
            subprocess.Popen(
                [sys.executable, str(SERVER), "--http", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={"LC_ALL": "C.UTF-8"},
            )
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=0.5)
                return f"http://127.0.0.1:{port}/mcp"
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("upstream HTTP server did not start")

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


async def test_http_upstream_gets_the_credential_as_a_header(
    tmp_path: Path, http_upstream: Callable[[], str]
) -> None:
    """Over streamable HTTP the token travels in the configured header and errors are redacted."""
    config = {
        "url": http_upstream(),
        "headers": {"Authorization": "Bearer ${cred:UP_TOKEN}"},
        "tools": {"whoami": "read", "fail_with_token": "read"},
    }
    async with proxied(tmp_path, config) as (client, _):
        who = data(await client.call_tool("up_whoami", {}))
        with pytest.raises(ToolError) as caught:
            await client.call_tool("up_fail_with_token", {})
    assert who["token_sha256"] == digest(TOKEN)
    assert "[REDACTED]" in str(caught.value)
    assert TOKEN not in str(caught.value)
