"""One module, built as the server builds it and called through the real pipeline, for tests.

    async with module_harness(tmp_path, "notes", {"db_dir": "data"}, env={"NOTES_TOKEN": "t"},
                              type="my_pkg.notes:NotesModule", mode="write") as h:
        assert await h.call("get", key="k") == "v"         # notes_get, scoped, scrubbed, audited
        assert "allowlist" in await h.refuse("get", key="../x")
        assert h.audit.last()["outcome"] == "denied"
        with pytest.raises(ScopeViolation):   # our own exception type: the method itself,
            await h.direct.get(key="../x")     # its arguments scoped as the pipeline does

The manifest is written to ``tmp_path`` and loaded as a file, so its validation, the registry,
the credential broker (env source by default), the call pipeline and the audit boundary are the
production ones. Calls go through an in-memory MCP client, as an agent host's would, so argument
validation by the schema happens too.
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
from fastmcp import Client
from fastmcp.exceptions import ToolError

from scoped_mcp import manifest as manifest_file
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import ToolModule
from scoped_mcp.pipeline import scope_rules
from scoped_mcp.redaction import Redactor
from scoped_mcp.server import Runtime, build, start_modules, stop_modules
from scoped_mcp.testing.audit import AuditCapture

DEFAULT_AGENT_TYPE = "research"


def write_manifest(path: Path, data: Mapping[str, Any]) -> Path:
    """Write a manifest (a mapping) as YAML to ``path`` and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
    return path


class ScopedMethods:
    """A module whose tool methods scope their arguments as the pipeline does, then run.

    For tests that want a module's own exception types (``ScopeViolation``, ``BackendError``)
    rather than the agent's text; every other attribute is the module's.
    """

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


@dataclass
class ModuleHarness:
    """A started module behind the real pipeline; ``call`` and ``refuse`` speak MCP to it."""

    key: str
    module: Any
    runtime: Runtime
    client: Client[Any]
    audit: AuditCapture

    @property
    def redactor(self) -> Redactor:
        return self.runtime.redactor

    @property
    def direct(self) -> Any:
        """The module's tool methods, scoped as the pipeline scopes them, without MCP around."""
        return ScopedMethods(self.module)

    def name(self, tool: str) -> str:
        """The registered name of ``tool`` (given with or without the module prefix)."""
        if tool in self.runtime.names:
            return tool
        prefix = type(self.module).tool_prefix or self.key
        return f"{prefix}_{tool}"

    async def call(self, tool: str, **arguments: Any) -> Any:
        """Call a tool as an agent would; its result as the client decodes it."""
        result = await self.client.call_tool(self.name(tool), arguments)
        return result.data

    async def refuse(self, tool: str, **arguments: Any) -> str:
        """Call a tool that must fail; the agent-visible error text."""
        try:
            await self.client.call_tool(self.name(tool), arguments)
        except ToolError as exc:
            return str(exc)
        raise AssertionError(f"{self.name(tool)} succeeded; a refusal was expected")


@asynccontextmanager
async def module_harness(
    tmp_path: Path,
    key: str,
    config: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    agent_id: str = "agent-01",
    agent_type: str = DEFAULT_AGENT_TYPE,
    mode: str | None = None,
    type: str | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> AsyncIterator[ModuleHarness]:
    """Start module ``key`` with ``config`` and credentials from ``env`` (the env source).

    ``manifest`` adds or overrides top-level manifest blocks (``credentials``, ``telemetry``).
    """
    spec: dict[str, Any] = {"config": dict(config)}
    if mode is not None:
        spec["mode"] = mode
    if type is not None:
        spec["type"] = type
    audit_path = tmp_path / f"audit-{key}.jsonl"
    data = {
        "agent_type": agent_type,
        "modules": {key: spec},
        "audit": {"path": str(audit_path)},
        **(manifest or {}),
    }
    path = write_manifest(tmp_path / f"manifest-{key}.yml", data)
    runtime = build(manifest_file.load(path), AgentContext(agent_id, agent_type), dict(env or {}))
    try:
        await start_modules(runtime)
        try:
            module: ToolModule = dict(runtime.modules)[key]
            async with Client(runtime.mcp) as client:
                yield ModuleHarness(key, module, runtime, client, AuditCapture(audit_path))
        finally:
            await stop_modules(runtime)
    finally:
        runtime.audit.close()  # releases the log's writer lock: the next harness may reopen it
