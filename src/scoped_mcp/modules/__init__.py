"""The module-authoring API, and the table of built-in modules.

A module is a file; a module with private helpers is a package (``http_proxy/``, ``mcp_proxy/``,
``sqlite/``, ``influxdb/``, ``grafana/``). Outbound network code they share is ``scoped_mcp.net``.
Everything an author needs is importable from here::

    from scoped_mcp.modules import Allowlist, Scoped, ToolModule, tool

Importing this package stays cheap: it loads no built-in module, no FastMCP and no httpx.
``scoped_mcp.modules._base`` (the original import path) keeps working.
"""

from __future__ import annotations

from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import (
    BackendError,
    ConfigError,
    CredentialError,
    InvalidArgument,
    ModuleLoadError,
    ScopeViolation,
    ToolCallError,
)
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import DynamicTool, ToolMode, ToolModule, tool
from scoped_mcp.scoping import (
    AllOf,
    Allowlist,
    NamespaceScope,
    PerAgentFile,
    PrefixScope,
    Scoped,
    ScopedStr,
    ScopeStrategy,
    UnsafeNoScope,
)

__all__ = [
    "AgentContext",
    "AllOf",
    "Allowlist",
    "BackendError",
    "ConfigError",
    "CredentialError",
    "CredentialView",
    "DynamicTool",
    "InvalidArgument",
    "ModuleLoadError",
    "NamespaceScope",
    "PerAgentFile",
    "PrefixScope",
    "ScopeStrategy",
    "ScopeViolation",
    "Scoped",
    "ScopedStr",
    "ToolCallError",
    "ToolMode",
    "ToolModule",
    "UnsafeNoScope",
    "tool",
]

BUILTIN: dict[str, str] = {
    "filesystem": "scoped_mcp.modules.filesystem:FilesystemModule",
    "sqlite": "scoped_mcp.modules.sqlite:SqliteModule",
    "ntfy": "scoped_mcp.modules.ntfy:NtfyModule",
    "smtp": "scoped_mcp.modules.smtp:SmtpModule",
    "matrix": "scoped_mcp.modules.matrix:MatrixModule",
    "slack_webhook": "scoped_mcp.modules.slack_webhook:SlackWebhookModule",
    "discord_webhook": "scoped_mcp.modules.discord_webhook:DiscordWebhookModule",
    "mcp_proxy": "scoped_mcp.modules.mcp_proxy:McpProxyModule",
    "http_proxy": "scoped_mcp.modules.http_proxy:HttpProxyModule",
    "grafana": "scoped_mcp.modules.grafana:GrafanaModule",
    "influxdb": "scoped_mcp.modules.influxdb:InfluxModule",
}
"""Built-in module name -> 'module:Class'. Imported only when a manifest names them."""
