"""Tool templates: schema and validator built once per (class, method, name), shared by agents.

Two agents' tools made from one template must never reach each other's module instance, not even
when their calls run at the same time, and must show exactly the schema FastMCP would build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp.exceptions import ValidationError
from fastmcp.tools import Tool
from fastmcp.utilities.json_schema import dereference_refs

from scoped_mcp import bound_tool
from scoped_mcp.audit.log import open_audit_log
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import ToolModule, tool
from scoped_mcp.pipeline import Pipeline, input_schema
from scoped_mcp.redaction import Redactor
from scoped_mcp.scoping import NamespaceScope, ScopedStr

pytestmark = pytest.mark.anyio


class Whoami(ToolModule):
    name = "whoami"
    scoping = NamespaceScope()

    @tool(mode="read")
    async def who(self, key: ScopedStr, pause: float = 0.0) -> Any:
        """Say which agent's instance answered, after an optional pause."""
        await anyio.sleep(pause)
        return {"agent": self.agent_ctx.agent_id, "key": key}


def agent_tool(tmp_path: Path, agent_id: str) -> Any:
    ctx = AgentContext(agent_id, "research")
    spec = Whoami.tool_specs()[0]
    audit = open_audit_log(tmp_path / f"{agent_id}.jsonl", ctx, Redactor())
    return Pipeline(audit, Redactor()).bind(
        Whoami(ctx, {}, {}), spec, module_key="whoami", tool_name="whoami_who"
    )


async def test_two_agents_share_a_template_and_each_reaches_its_own_instance(
    tmp_path: Path,
) -> None:
    first, second = agent_tool(tmp_path, "agent-a"), agent_tool(tmp_path, "agent-b")
    assert first.fn is second.fn  # one shared function: the template was built once
    assert first.parameters == second.parameters
    assert first.parameters is not second.parameters  # each has its own copy to change
    answers: dict[str, Any] = {}

    async def run(name: str, made: Any, pause: float) -> None:
        answers[name] = (await made.run({"key": name, "pause": pause})).structured_content

    async with anyio.create_task_group() as group:  # interleaved: b answers while a waits
        group.start_soon(run, "a", first, 0.2)
        group.start_soon(run, "b", second, 0.0)
    assert answers["a"] == {"agent": "agent-a", "key": "agent-a:a"}
    assert answers["b"] == {"agent": "agent-b", "key": "agent-b:b"}


async def test_a_template_validates_arguments_as_fastmcp_does(tmp_path: Path) -> None:
    made = agent_tool(tmp_path, "agent-a")
    with pytest.raises(ValidationError, match=r"pause\n  Input should be a valid number"):
        await made.run({"key": "k", "pause": "not a number"})


def test_the_schema_is_the_one_fastmcp_builds_from_the_signature() -> None:
    spec = Whoami.tool_specs()[0]
    shared = bound_tool.template(Whoami, spec, "whoami_who")
    assert dereference_refs(dict(shared.tool.parameters)) == input_schema(Whoami, spec)
    assert shared.tool.parameters["required"] == ["key"]


async def test_an_unbound_template_refuses_to_run() -> None:
    shared = bound_tool.template(Whoami, Whoami.tool_specs()[0], "whoami_who")
    with pytest.raises(RuntimeError, match="not bound"):
        await shared.tool.run({"key": "k"})


def test_prepare_builds_every_tool_under_its_default_name() -> None:
    assert bound_tool.prepare({"whoami": Whoami}) == 1
    assert isinstance(bound_tool.template(Whoami, Whoami.tool_specs()[0], "whoami_who").tool, Tool)
