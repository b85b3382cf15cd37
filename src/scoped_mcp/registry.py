"""Finds the modules a manifest names and registers only the tools its modes allow.

Lookup order for ``modules: {key: {...}}``: an explicit ``type: package.module:Class``, then the
built-in modules, then the ``scoped_mcp.modules`` entry-point group. Only the modules a manifest
names are ever imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from scoped_mcp import plugins
from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import ConfigError, ManifestError, ModuleLoadError
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import Manifest, ModuleSpec, describe_errors, locate, source_node
from scoped_mcp.modules import BUILTIN
from scoped_mcp.modules._base import DynamicTool, ToolMode, ToolModule, ToolSpec

ENTRY_POINT_GROUP = "scoped_mcp.modules"


@dataclass(frozen=True, slots=True)
class PlannedTool:
    """One tool an agent will get: its MCP name, its module, and the method behind it."""

    name: str
    module_key: str
    spec: ToolSpec
    description: str


@dataclass(frozen=True, slots=True)
class PlannedModule:
    """A module class with its validated configuration and the tools its mode allows."""

    key: str
    cls: type[ToolModule]
    mode: ToolMode
    config: Any
    tools: tuple[PlannedTool, ...]
    configured: tuple[tuple[str, ToolMode], ...] = ()
    """Dynamic tools the config allows (name with prefix, mode), registered at start-up."""


def _import_class(target: str, key: str) -> type[ToolModule]:
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModuleLoadError(
            f"modules.{key}: cannot import {module_name!r}: {exc}",
            fix=f"install the package that provides {module_name!r}, or correct 'type'",
        ) from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, ToolModule)):
        raise ModuleLoadError(f"modules.{key}: {target!r} is not a ToolModule subclass")
    return cls


def resolve_class(key: str, spec: ModuleSpec) -> type[ToolModule]:
    """The ``ToolModule`` class a manifest entry names, importing only that one."""
    if spec.type:
        return _import_class(spec.type, key)
    if key in BUILTIN:
        return _import_class(BUILTIN[key], key)
    for entry in plugins.installed(ENTRY_POINT_GROUP):
        if entry.name == key:
            return _import_class(entry.value, key)
    raise ManifestError(
        f"modules.{key}: unknown module {key!r}",
        fix=f"use one of the built-in modules ({', '.join(sorted(BUILTIN))}), install a package "
        f"that provides it in the {ENTRY_POINT_GROUP!r} entry-point group, or give "
        "'type: package.module:ClassName'",
    )


def _mode(key: str, spec: ModuleSpec, cls: type[ToolModule]) -> ToolMode:
    if cls.is_write_only():
        if spec.mode == "read":
            raise ManifestError(
                f"modules.{key}.mode: {key!r} has only write tools, so 'read' would register none",
                fix="remove the mode field; notification modules are write-only",
            )
        return "write"
    return spec.mode or "read"


def _config(manifest: Manifest, key: str, spec: ModuleSpec, cls: type[ToolModule]) -> Any:
    if cls.config_model is None:
        return dict(spec.config)
    try:
        context = {
            "base_dir": manifest.base_dir,
            "module_key": key,
            "manifest": manifest.source_path,
            "credential_settings": manifest.credentials.settings,
        }
        return cls.config_model.model_validate(spec.config, context=context)
    except ValidationError as exc:
        where = manifest.source_path or manifest.base_dir
        raise ManifestError(
            describe_errors(
                exc,
                source=where,
                node=source_node(manifest),
                prefix=("modules", key, "config"),
                model=cls.config_model,
            )
        ) from None


def _located(manifest: Manifest, loc: tuple[str, ...], exc: ConfigError) -> ConfigError:
    """The same error, its message prefixed with the manifest file and line of ``loc``."""
    return type(exc)(f"{locate(manifest, loc)}: {exc.message}", fix=exc.fix)


def allows(module_mode: ToolMode, tool_mode: ToolMode) -> bool:
    """Whether a module in ``module_mode`` registers a tool of ``tool_mode`` (read < write)."""
    return not (tool_mode == "write" and module_mode == "read")


class ToolNames:
    """The tool names one server has given out, and the module key that holds each."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._owners

    def __iter__(self) -> Iterator[str]:
        return iter(self._owners)

    def claim(self, name: str, key: str) -> str | None:
        """Give ``name`` to module ``key``; return the module that already has it, if any."""
        owner = self._owners.get(name)
        if owner is None:
            self._owners[name] = key
        return owner


def _claimer(manifest: Manifest, key: str, names: ToolNames) -> Callable[[str], str]:
    """Reserve tool names for module ``key``; a name another module has is a manifest error."""

    def claim(name: str) -> str:
        owner = names.claim(name, key)
        if owner is not None:
            raise ManifestError(
                f"{locate(manifest, ('modules', key))}: modules.{key}: tool {name!r} is also "
                f"registered by module {owner!r}",
                fix="give one of the modules another key",
            )
        return name

    return claim


def plan(manifest: Manifest) -> list[PlannedModule]:
    """Resolve and validate every module of ``manifest`` and list the tools it would register."""
    planned: list[PlannedModule] = []
    names = ToolNames()
    for key, spec in manifest.modules.items():
        try:
            cls = resolve_class(key, spec)
        except ConfigError as exc:
            raise _located(manifest, ("modules", key), exc) from exc.__cause__
        try:
            mode = _mode(key, spec, cls)
        except ConfigError as exc:
            raise _located(manifest, ("modules", key, "mode"), exc) from None
        prefix = cls.tool_prefix or key
        claim = _claimer(manifest, key, names)
        tools = []
        for tool_spec in cls.tool_specs():
            if not allows(mode, tool_spec.mode):
                continue
            doc = getattr(cls, tool_spec.method).__doc__ or ""
            summary = " ".join(doc.split("\n\n")[0].split())
            tools.append(PlannedTool(claim(f"{prefix}_{tool_spec.name}"), key, tool_spec, summary))
        config = _config(manifest, key, spec, cls)
        configured = tuple(
            (claim(f"{prefix}_{name}"), tool_mode)
            for name, tool_mode in cls.configured_tools(config)
            if allows(mode, tool_mode)
        )
        planned.append(PlannedModule(key, cls, mode, config, tuple(tools), configured))
    return planned


def admit_dynamic(names: ToolNames, item: PlannedModule, dynamic: DynamicTool) -> str | None:
    """The name a module's run-time tool registers under; ``None`` when its mode excludes it.

    ``names`` are the tools the server has registered so far. A name already among them, or a
    mode that is neither read nor write, stops start-up.
    """
    if dynamic.mode not in ("read", "write"):
        raise ModuleLoadError(
            f"modules.{item.key}: tool {dynamic.name!r} has mode {dynamic.mode!r}"
        )
    if not allows(item.mode, dynamic.mode):
        return None
    name = f"{item.cls.tool_prefix or item.key}_{dynamic.name}"
    if names.claim(name, item.key) is not None:
        raise ModuleLoadError(
            f"modules.{item.key}: tool {name!r} is already registered",
            fix="give one of the modules another key",
        )
    return name


def instantiate(
    planned: list[PlannedModule],
    agent_ctx: AgentContext,
    credentials_for: Callable[[str, type[ToolModule]], CredentialView],
) -> list[tuple[PlannedModule, ToolModule]]:
    """Create each module instance with its own credential view."""
    instances = []
    for item in planned:
        try:
            module = item.cls(agent_ctx, credentials_for(item.key, item.cls), item.config)
        except (ManifestError, ModuleLoadError):
            raise
        except Exception as exc:
            raise ModuleLoadError(
                f"modules.{item.key}: module failed to initialise ({type(exc).__name__})"
            ) from exc
        instances.append((item, module))
    return instances
