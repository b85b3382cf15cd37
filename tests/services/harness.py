"""Builds one module the way the server does (manifest, registry, real broker) for unit tests.

Tests call tool methods directly, to see our own exception types rather than the agent's text.
``Built.module`` therefore presents the module as the call pipeline does: each tool method first
passes its ``Scoped`` arguments through the pipeline's own scope step, so an allowlist a module
declares with ``Scoped("name")`` holds in these tests exactly as it does for an agent.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scoped_mcp import manifest as manifest_mod
from scoped_mcp.identity import AgentContext
from scoped_mcp.invocation import _apply_scope, _strategies
from scoped_mcp.modules._base import ToolModule
from scoped_mcp.redaction import Redactor
from scoped_mcp.server import Runtime, build, start_modules, stop_modules


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
    strategies = _strategies(module, params)

    async def call(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(module, *args, **kwargs)
        bound.apply_defaults()
        for param, strategy in strategies.items():
            value = bound.arguments.get(param)
            if value is not None:
                bound.arguments[param] = _apply_scope(strategy, value, module.agent_ctx)
        return await method(*bound.args, **bound.kwargs)

    return call


@dataclass
class Built:
    """A started module (as the pipeline presents it) plus the runtime around it."""

    module: Any
    runtime: Runtime

    @property
    def redactor(self) -> Redactor:
        return self.runtime.redactor


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
    data = {
        "agent_type": "research",
        "modules": {key: {"config": dict(config)}},
        "audit": {"path": str(tmp_path / f"audit-{key}.jsonl")},
    }
    path = tmp_path / f"manifest-{key}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    runtime = build(manifest_mod.load(path), AgentContext(agent_id, "research"), dict(env))
    await start_modules(runtime)
    try:
        module: ToolModule = dict(runtime.modules)[key]
        yield Built(PipelineView(module), runtime)
    finally:
        await stop_modules(runtime)
