"""A module's ``@tool`` method as a FastMCP tool: schema and validator built once per tool.

FastMCP builds a tool's input schema and its argument validator (pydantic) from a function's
signature. That work depends only on the module class, the method and the tool's name, never on
the agent, yet it was repeated for every tool of every start: for the four tools of a small
manifest about 3 MiB of private memory in each zygote child, and milliseconds of start-up. So a
``Template`` is built once per (class, method, name) and kept for the life of the process; a
zygote builds one for every tool of every installed built-in module before it forks.

A template holds no agent state. Each agent's tool is a ``BoundTool``: a copy of the template's
tool that carries its own ``call`` (the pipeline binding of one module instance). The template's
function is shared, so ``run`` hands it this tool's ``call`` through a context variable for the
length of the call: FastMCP's own validation, error handling and result conversion run as for
any function tool.
"""

from __future__ import annotations

import copy
import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from fastmcp.tools.base import ToolResult
from fastmcp.tools.function_tool import FunctionTool
from mcp.types import ToolAnnotations
from pydantic.json_schema import SkipJsonSchema

from scoped_mcp.modules._base import ToolMode, ToolModule, ToolSpec

Call = Callable[[dict[str, Any]], Awaitable[Any]]

_CALL: ContextVar[Call] = ContextVar("scoped_mcp_bound_tool_call")


class BoundTool(FunctionTool):
    """A FastMCP function tool whose shared function runs this tool's ``call``."""

    call: SkipJsonSchema[Call | None] = None

    def bound_to(self, call: Call) -> BoundTool:
        """This tool for one module instance: its own ``call`` and its own schema dicts."""
        return self.model_copy(
            update={
                "call": call,
                "parameters": copy.deepcopy(self.parameters),
                "output_schema": copy.deepcopy(self.output_schema),
            }
        )

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        if self.call is None:
            raise RuntimeError(f"the tool template {self.name} is not bound to a module")
        token = _CALL.set(self.call)
        try:
            return await super().run(arguments)
        finally:
            _CALL.reset(token)


@dataclass(frozen=True)
class Template:
    """What binding a ``@tool`` method needs that depends on its class alone."""

    tool: BoundTool
    signature: inspect.Signature
    hints: dict[str, Any]


_templates: dict[tuple[type[ToolModule], str, str], Template] = {}


def template(cls: type[ToolModule], spec: ToolSpec, tool_name: str) -> Template:
    """The template of ``cls``'s tool ``spec`` registered as ``tool_name`` (built on first use)."""
    key = (cls, spec.method, tool_name)
    found = _templates.get(key)
    if found is None:
        method, signature, hints = tool_signature(cls, spec)

        async def call_tool(**arguments: Any) -> Any:
            return await _CALL.get()(arguments)

        present(call_tool, tool_name, method, signature, hints)
        tool = BoundTool.from_function(
            call_tool, name=tool_name, annotations=tool_annotations(spec.mode)
        )
        assert isinstance(tool, BoundTool)
        found = _templates[key] = Template(tool, signature, hints)
    return found


def prepare(classes: Mapping[str, type[ToolModule]]) -> int:
    """Build the template of every tool of ``classes`` (by module key) as a manifest naming the
    module by that key would register it; return how many were built."""
    count = 0
    for key, cls in classes.items():
        prefix = cls.tool_prefix or key
        for spec in cls.tool_specs():
            template(cls, spec, f"{prefix}_{spec.name}")
            count += 1
    return count


def tool_signature(
    cls: type[ToolModule], spec: ToolSpec
) -> tuple[Callable[..., Any], inspect.Signature, dict[str, Any]]:
    """A ``@tool`` method, its signature as the agent sees it (no ``self``; annotations resolved,
    ``Annotated`` metadata kept) and its type hints. Needs the class only, not an instance."""
    method = getattr(cls, spec.method)
    hints = typing.get_type_hints(method, include_extras=True)
    signature = inspect.signature(method)
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in list(signature.parameters.values())[1:]
    ]
    returns = hints.get("return", inspect.Signature.empty)
    return method, signature.replace(parameters=params, return_annotation=returns), hints


def present(
    fn: Callable[..., Any],
    name: str,
    method: Callable[..., Any],
    signature: inspect.Signature,
    hints: Mapping[str, Any],
) -> None:
    """Give ``fn`` the name, docstring and signature FastMCP builds the tool's schema from."""
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = inspect.getdoc(method)
    fn.__signature__ = signature  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    if "return" in hints:
        fn.__annotations__["return"] = hints["return"]


def tool_annotations(mode: ToolMode) -> ToolAnnotations:
    """What a tool of ``mode`` tells clients about itself."""
    return ToolAnnotations(read_only_hint=mode == "read", open_world_hint=False)
