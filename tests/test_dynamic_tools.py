"""Run-time tools (``ToolModule.dynamic_tools``) and configuration-named credentials.

A module whose tools are only known after ``startup`` (``mcp_proxy``) registers them through the
same hooks as ``@tool`` methods: by mode, under the module prefix, inside the call pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastmcp import Client
from fastmcp.exceptions import ToolError

from scoped_mcp import server
from scoped_mcp.errors import BackendError, ModuleLoadError
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import load
from scoped_mcp.modules._base import DynamicTool, ToolModule

pytestmark = pytest.mark.anyio
SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


class Dynamic(ToolModule):
    """Defines its tools at start-up; its one credential key is named in its config."""

    name = "dynamic"

    @classmethod
    def declared_credentials(cls, config: Any) -> tuple[Sequence[str], Sequence[str]]:
        return (config["key"],), ()

    async def startup(self) -> None:
        self.started = True

    def dynamic_tools(self) -> Sequence[DynamicTool]:
        async def shout(arguments: dict[str, Any]) -> str:
            return str(arguments["text"]).upper()

        async def leak(arguments: dict[str, Any]) -> str:
            raise BackendError(f"upstream said: token is {self.credentials[self.config['key']]}")

        async def erase(arguments: dict[str, Any]) -> str:
            return "erased"

        return [
            DynamicTool("shout", "read", "Upper-case a text.", SCHEMA, shout),
            DynamicTool("leak", "read", "Fail with the credential.", {"type": "object"}, leak),
            DynamicTool("erase", "write", "A write tool.", {"type": "object"}, erase),
        ]


class Clash(Dynamic):
    """Defines a run-time tool whose name another module already has."""

    tool_prefix = "dyn"


def runtime_for(tmp_path: Path, modules: dict[str, Any]) -> server.Runtime:
    path = tmp_path / "manifest.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "agent_type": "research",
                "modules": modules,
                "credentials": {"source": "env"},
                "audit": {"path": str(tmp_path / "audit.jsonl")},
            }
        )
    )
    environ = {"DYN_TOKEN": "dyn-secret-value-123"}
    return server.build(load(path), AgentContext("agent-01", "research"), environ)


def module(mode: str, key: str = "DYN_TOKEN", cls: str = "Dynamic") -> dict[str, Any]:
    return {"type": f"tests.test_dynamic_tools:{cls}", "mode": mode, "config": {"key": key}}


async def test_dynamic_tools_register_by_mode_with_their_schema(tmp_path: Path) -> None:
    """Read mode gets only the read tools, under the module prefix, with the given schema."""
    runtime = runtime_for(tmp_path, {"dyn": module("read")})
    await server.start_modules(runtime)
    async with Client(runtime.mcp) as client:
        tools = {t.name: t for t in await client.list_tools()}
        assert sorted(tools) == ["dyn_leak", "dyn_shout"]
        assert tools["dyn_shout"].input_schema == SCHEMA
        assert tools["dyn_shout"].description == "Upper-case a text."
        result = await client.call_tool("dyn_shout", {"text": "hi"})
        assert [block.text for block in result.content] == ["HI"]
    await server.stop_modules(runtime)
    assert runtime.tool_names == ["dyn_shout", "dyn_leak"]
    call = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert (call["tool"], call["module"], call["mode"], call["outcome"]) == (
        "dyn_shout",
        "dyn",
        "read",
        "ok",
    )


async def test_write_mode_adds_write_tools(tmp_path: Path) -> None:
    """In write mode the module's write tools are registered too."""
    runtime = runtime_for(tmp_path, {"dyn": module("write")})
    await server.start_modules(runtime)
    assert runtime.tool_names == ["dyn_shout", "dyn_leak", "dyn_erase"]
    await server.stop_modules(runtime)


async def test_dynamic_tool_errors_pass_through_redaction(tmp_path: Path) -> None:
    """An error naming the credential reaches the agent and the audit log redacted."""
    runtime = runtime_for(tmp_path, {"dyn": module("read")})
    await server.start_modules(runtime)
    async with Client(runtime.mcp) as client:
        with pytest.raises(ToolError) as caught:
            await client.call_tool("dyn_leak", {})
    await server.stop_modules(runtime)
    assert "dyn-secret-value-123" not in str(caught.value)
    assert "[REDACTED]" in str(caught.value)
    assert "dyn-secret-value-123" not in (tmp_path / "audit.jsonl").read_text()


async def test_credential_keys_come_from_the_config(tmp_path: Path) -> None:
    """A key named only in the config is planned and checked like a declared one."""
    runtime = runtime_for(tmp_path, {"dyn": module("read")})
    assert runtime.broker.keys_of("dyn") == ["DYN_TOKEN"]
    with pytest.raises(Exception, match="MISSING_TOKEN"):
        runtime_for(tmp_path, {"dyn": module("read", key="MISSING_TOKEN")})


async def test_a_clashing_dynamic_name_stops_start_up(tmp_path: Path) -> None:
    """Two modules defining the same tool name at run time is a start-up error."""
    runtime = runtime_for(tmp_path, {"dyn": module("read"), "other": module("read", cls="Clash")})
    with pytest.raises(ModuleLoadError, match="dyn_shout"):
        await server.start_modules(runtime)
