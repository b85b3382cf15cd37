"""Builds one module the way the server does, through the public kit's module harness.

``built_module`` is ``scoped_mcp.testing.harness.module_harness`` with the arguments these suites
have always passed (a config, credentials from ``env``, an agent id).

These suites also call tool methods directly, to see our own exception types rather than the
agent's text. ``Built.module`` therefore presents the module as the call pipeline does: each tool
method first passes its ``Scoped`` arguments through the pipeline's own rules (``scope_rules``),
so an allowlist a module declares with ``Scoped("name")`` holds here exactly as for an agent.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from scoped_mcp.modules._base import ToolModule
from scoped_mcp.pipeline import scope_rules
from scoped_mcp.testing.harness import ModuleHarness, module_harness


class PipelineView:
    """A module whose tool methods scope their arguments first; everything else is the module's."""

    def __init__(self, module: ToolModule) -> None:
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_tools", {spec.method for spec in module.tool_specs()})

    def __getattr__(self, name: str) -> Any:
        if name in self._tools:
            return _scoped_method(self._module, name)
        return getattr(self._module, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._module, name, value)


def _scoped_method(module: ToolModule, name: str) -> Callable[..., Any]:
    method = getattr(type(module), name)
    signature = inspect.signature(method)
    hints = typing.get_type_hints(method, include_extras=True)
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in list(signature.parameters.values())[1:]
    ]
    rules = scope_rules(module, params)

    async def call(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(module, *args, **kwargs)
        bound.apply_defaults()
        for param, rule in rules.items():
            value = bound.arguments.get(param)
            if value is not None:
                bound.arguments[param] = rule.apply(value, module.agent_ctx)
        return await method(*bound.args, **bound.kwargs)

    return call


class Built:
    """The kit's ``ModuleHarness``, with ``module`` seen through the pipeline's scope rules."""

    def __init__(self, harness: ModuleHarness) -> None:
        self.harness = harness
        self.module = PipelineView(harness.module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.harness, name)


@asynccontextmanager
async def built_module(
    tmp_path: Path,
    key: str,
    config: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    agent_id: str = "agent-01",
) -> AsyncIterator[Built]:
    """Start module ``key`` with ``config`` and credentials from ``env`` (env source)."""
    async with module_harness(tmp_path, key, config, env=env, agent_id=agent_id) as harness:
        yield Built(harness)
