"""mcp_proxy through the real server over stdio, its upstream's token leased from OpenBao.

The token lives in KV v2 and is re-read every second (``credentials.ttl: 1``); the test rotates
it with the admin client while calls are in flight and checks which token, and which child
process, each call saw.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.fixtures.upstream_mcp import SERVER, pid_state
from tests.support import ServerHandle
from tests.vault.conftest import Bao
from tests.vault.test_vault_stdio import approle_env, vault_manifest

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]
TOOLS = {
    "whoami": "read",
    "slow_whoami": "read",
    "echo_env_names": "read",
    "fail_with_token": "read",
    "write_thing": "write",
}


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def proxy_manifest(bao: Bao) -> dict[str, Any]:
    """The Vault manifest of the other stdio tests, with the proxy as its one module."""
    manifest = vault_manifest(bao, ttl=1)
    manifest["modules"] = {
        "mcp_proxy": {
            "mode": "read",
            "config": {
                "command": sys.executable,
                "args": [str(SERVER)],
                "env": {"UPSTREAM_TOKEN": "${cred:UP_TOKEN}", "LC_ALL": "C.UTF-8"},
                "tools": TOOLS,
                "start_timeout": 20,
                "sandbox": "off",  # compares pids seen inside the child with ours
            },
        }
    }
    return manifest


async def whoami(server: ServerHandle, seconds: float | None = None) -> Any:
    if seconds is None:
        return await parsed(server, "mcp_proxy_whoami", {})
    return await parsed(server, "mcp_proxy_slow_whoami", {"seconds": seconds})


async def parsed(server: ServerHandle, tool: str, arguments: dict[str, Any]) -> Any:
    """A call's structured content, or its text parsed as JSON."""
    result = await server.client.call_tool(tool, arguments)
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


async def wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - polling /proc, nothing to await
            await anyio.sleep(0.05)


async def burst(server: ServerHandle, count: int, seconds: float) -> list[dict[str, Any]]:
    """``count`` concurrent slow calls; every one must succeed."""
    results: list[dict[str, Any]] = []

    async def one() -> None:
        results.append(await whoami(server, seconds))

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    return results


async def test_proxy_over_stdio_survives_a_rotation_mid_burst(
    bao: Bao, write_manifest: Callable[..., Path], serve: Callable[..., Any]
) -> None:
    """A token rotated in OpenBao mid-burst: old calls end on the old child, new ones on a new."""
    before, after = "proxy-token-before-" + "1a2b3c", "proxy-token-after-" + "4d5e6f"
    bao.put_kv2("scoped-mcp/research", API_TOKEN="unused-here", UP_TOKEN=before)
    manifest = write_manifest(proxy_manifest(bao))
    async with serve(manifest, env=approle_env(bao)) as server:
        assert await server.tool_names() == [
            "mcp_proxy_echo_env_names",
            "mcp_proxy_fail_with_token",
            "mcp_proxy_slow_whoami",
            "mcp_proxy_whoami",
        ]
        first = await whoami(server)
        assert first["token_sha256"] == digest(before)
        assert await parsed(server, "mcp_proxy_echo_env_names", {}) == ["LC_ALL", "UPSTREAM_TOKEN"]
        old_calls: list[dict[str, Any]] = []
        new_calls: list[dict[str, Any]] = []
        async with anyio.create_task_group() as group:

            async def old_batch() -> None:
                old_calls.extend(await burst(server, 8, 2.5))

            group.start_soon(old_batch)
            await anyio.sleep(0.5)
            bao.put_kv2("scoped-mcp/research", API_TOKEN="unused-here", UP_TOKEN=after)
            await anyio.sleep(1.2)  # past the 1 s TTL: the next call reads the new value
            new_calls = await burst(server, 8, 0.2)
        assert {c["token_sha256"] for c in old_calls} == {digest(before)}
        assert {c["pid"] for c in old_calls} == {first["pid"]}
        assert {c["token_sha256"] for c in new_calls} == {digest(after)}
        (new_pid,) = {c["pid"] for c in new_calls}
        assert new_pid != first["pid"]
        # Drained, stopped and reaped by the still-running server: not even a zombie.
        await wait_until(lambda: pid_state(first["pid"]) is None)
        error = await server.error("mcp_proxy_fail_with_token")
        assert "authentication failed for token [REDACTED]" in error
    # Stopped with the server; under load the reparented child can stay a zombie for a moment.
    await wait_until(lambda: pid_state(new_pid) is None)
    for text in (error, server.stderr(), server.audit_path.read_text()):
        assert before not in text
        assert after not in text
    calls = [r for r in server.audit_records() if r.get("event") == "tool_call"]
    assert sum(r["outcome"] == "ok" for r in calls) == 18
    assert [r["tool"] for r in calls if r["outcome"] != "ok"] == ["mcp_proxy_fail_with_token"]
    assert "upstream starting" in server.stderr()  # the child's stderr, relayed to the ops log


async def test_missing_allowlisted_tool_refuses_to_serve(
    bao: Bao, write_manifest: Callable[..., Path], serve: Callable[..., Any]
) -> None:
    """A tool allowlisted but absent upstream stops the server before it answers, naming it."""
    bao.put_kv2("scoped-mcp/research", API_TOKEN="unused-here", UP_TOKEN="proxy-token-x1y2z3")
    manifest_data = proxy_manifest(bao)
    manifest_data["modules"]["mcp_proxy"]["config"]["tools"] = {"drop_tables": "write"}
    manifest = write_manifest(manifest_data)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the client sees the server exit
        async with serve(manifest, env=approle_env(bao)) as server:
            await server.tool_names()
    stderr = (manifest.parent / "home" / "stderr-agent-01.log").read_text()
    assert "the upstream has no tool 'drop_tables'" in stderr
