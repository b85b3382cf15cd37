"""Approvals when the server is reached over streamable HTTP (``serve --http``): the same gate,
its control socket started beside the HTTP server, decided with the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from scoped_mcp.testing.harness import write_manifest
from tests.approvals.support import decide_when_requested, events, server_env
from tests.http.support import serving

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]
WRITE = "filesystem_write_file"


async def test_a_call_over_http_is_held_and_approved_with_the_cli(tmp_path: Path) -> None:
    """Over HTTP the held call runs once approved; its records name the approval."""
    data = tmp_path / "data"
    data.mkdir()
    manifest = write_manifest(
        tmp_path / "http-gated.yml",
        {
            "agent_type": "build",
            "modules": {"filesystem": {"mode": "write", "config": {"base_path": str(data)}}},
            "serve": {"http": {"token": "env:SCOPED_MCP_HTTP_TOKEN"}},
            "approvals": {"wait": 30, "rules": [{"tools": [WRITE]}]},
        },
    )
    decided: list[dict[str, Any]] = []

    async def approve() -> None:
        decided.append(await decide_when_requested(tmp_path, WRITE, "approve"))

    with serving(
        manifest, tmp_path / "home", agent_type="build", env=server_env(tmp_path)
    ) as server:
        async with server.client() as client, anyio.create_task_group() as group:
            group.start_soon(approve)
            await client.call_tool(WRITE, {"path": "h.txt", "content": "over http"})
        assert server.stop() == 0
    assert (data / "agents" / "agent-01" / "h.txt").read_text() == "over http"
    (approved,) = events(server.audit_records(), "approved")
    assert approved["approval"] == decided[0]["id"]
    (call,) = server.audit_records("tool_call")
    assert call["approval"] == decided[0]["id"]
    assert call["outcome"] == "ok"
