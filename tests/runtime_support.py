"""In-process server for one module: the real call pipeline without a subprocess, and MCP calls.

``runtime_for`` builds the whole server (manifest, broker, audit, FastMCP) for a single module;
``answer`` and ``refusal`` call a tool through a real MCP client; ``audit_records`` reads the
tool-call records the call left.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from scoped_mcp.server import Runtime
from scoped_mcp.testing.harness import module_harness


@asynccontextmanager
async def runtime_for(
    tmp_path: Path, key: str, config: Mapping[str, Any], env: Mapping[str, str], mode: str
) -> AsyncIterator[Runtime]:
    """The server for one module (manifest, broker, audit, FastMCP), from the kit's harness."""
    async with module_harness(tmp_path, key, config, env=env, mode=mode or None) as harness:
        yield harness.runtime


def audit_records(tmp_path: Path, tool: str) -> list[dict[str, Any]]:
    """The ``tool_call`` records for ``tool`` in the audit log ``runtime_for`` configured."""
    lines = next(tmp_path.glob("audit-*.jsonl")).read_text().splitlines()
    records = [json.loads(line) for line in lines if line]
    return [r for r in records if r.get("event") == "tool_call" and r.get("tool") == tool]


async def answer(runtime: Runtime, tool: str, arguments: dict[str, Any]) -> Any:
    """Call ``tool`` over MCP and return its data."""
    async with Client(runtime.mcp) as client:
        return (await client.call_tool(tool, arguments)).data


async def refusal(runtime: Runtime, tool: str, arguments: dict[str, Any]) -> str:
    """Call ``tool`` over MCP; it must fail with a specific message, not an internal error."""
    async with Client(runtime.mcp) as client:
        with pytest.raises(ToolError) as caught:
            await client.call_tool(tool, arguments)
    message = str(caught.value)
    assert "internal error" not in message, message
    assert f"Error calling tool '{tool}'" not in message, message
    return message
