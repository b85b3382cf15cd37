"""Built-in tool modules, one file each. ``_base`` holds the module-authoring API."""

from __future__ import annotations

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
