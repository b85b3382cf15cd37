"""See what an agent sees: start one server from settings.json as Claude Code does, and talk to it.

    python examples/claude-code/mcp_call.py AGENT --list
    python examples/claude-code/mcp_call.py AGENT TOOL '{"arg": "value"}'

AGENT is a key of ``mcpServers`` in settings.json. The server is started with that entry's
command, arguments and ``env`` (on top of this shell's environment, as an agent host does), spoken
to over stdio with the MCP client the server itself is built on, and stopped again. ``--list``
prints every tool with its input schema; a call prints the tool's result, or ``error: ...`` and
exit status 1 when the tool refuses or fails: in both cases exactly the text the agent would get.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from fastmcp.exceptions import ToolError

SETTINGS = Path(__file__).resolve().with_name("settings.json")


def transport_for(agent: str, settings: Path) -> StdioTransport:
    """The stdio transport for one mcpServers entry, as an agent host would spawn it."""
    servers = json.loads(settings.read_text())["mcpServers"]
    if agent not in servers:
        raise SystemExit(f"no agent {agent!r} in {settings}; have: {', '.join(servers)}")
    entry = servers[agent]
    return StdioTransport(
        command=entry["command"],
        args=list(entry.get("args", [])),
        env={**os.environ, **entry.get("env", {})},
        cwd=os.getcwd(),
        keep_alive=False,
    )


async def run(agent: str, tool: str | None, arguments: dict[str, Any], settings: Path) -> int:
    async with Client(transport_for(agent, settings)) as client:
        if tool is None:
            for listed in await client.list_tools():
                print(f"{listed.name}: {json.dumps(listed.inputSchema, sort_keys=True)}")
            return 0
        try:
            result = await client.call_tool(tool, arguments)
        except ToolError as exc:
            print(f"error: {exc}")
            return 1
        data = result.structured_content if result.structured_content is not None else result.data
        print(json.dumps(data, indent=2, default=str))
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("agent", help="a key of mcpServers in settings.json")
    parser.add_argument("tool", nargs="?", help="the tool to call")
    parser.add_argument("arguments", nargs="?", default="{}", help="the tool's arguments (JSON)")
    parser.add_argument("--list", action="store_true", help="list the tools and their schemas")
    parser.add_argument("--settings", type=Path, default=SETTINGS)
    args = parser.parse_args()
    if not args.list and not args.tool:
        parser.error("name a tool, or pass --list")
    tool = None if args.list else args.tool
    return asyncio.run(run(args.agent, tool, json.loads(args.arguments), args.settings))


if __name__ == "__main__":
    sys.exit(main())
