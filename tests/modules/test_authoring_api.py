"""The module-authoring API exported by ``scoped_mcp.modules``: its names are pinned, and
importing it stays cheap."""

from __future__ import annotations

import importlib
import subprocess
import sys

import scoped_mcp.modules as api
from scoped_mcp import errors, identity, scoping
from scoped_mcp.credentials import view
from scoped_mcp.modules import _base

PINNED = [
    "AgentContext", "AllOf", "Allowlist", "BackendError", "ConfigError", "CredentialError",
    "CredentialView", "DynamicTool", "InvalidArgument", "ModuleLoadError", "NamespaceScope",
    "PerAgentFile", "PrefixScope", "ScopeStrategy", "ScopeViolation", "Scoped", "ScopedStr",
    "ToolCallError", "ToolMode", "ToolModule", "UnsafeNoScope", "tool",
]  # fmt: skip


def test_all_is_pinned() -> None:
    """Adding or removing a public name is a deliberate change of this test."""
    assert api.__all__ == PINNED


def test_every_exported_name_is_the_original_object() -> None:
    """The package re-exports, never redefines: each name is the object its home module holds."""
    homes = (_base, scoping, errors, view, identity)
    for name in api.__all__:
        home = next(m for m in homes if name in vars(m))
        assert getattr(api, name) is getattr(home, name), name


def test_importing_the_api_loads_no_builtin_module_nor_httpx_nor_fastmcp() -> None:
    """Authors pay for what they import: the API alone loads no built-in module and no client."""
    code = (
        "import sys, scoped_mcp.modules\n"
        "heavy = {'httpx', 'fastmcp', 'mcp', 'aiosmtplib', 'hvac'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
        "print(sorted(m for m in sys.modules if m.startswith('scoped_mcp.modules.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert out == ["[]", "['scoped_mcp.modules._base']"]


def test_every_builtin_entry_resolves() -> None:
    """Each ``BUILTIN`` entry names a module path and a class that exist."""
    for name, target in api.BUILTIN.items():
        path, _, cls = target.partition(":")
        module_class = getattr(importlib.import_module(path), cls)
        assert issubclass(module_class, api.ToolModule), name
