"""mcp_proxy: an allowlisted subset of another MCP server's tools, with credentials held here.

``module`` holds the module and its configuration, ``upstream`` the session with the upstream
server, ``stdio`` the child process started with exactly the environment configured, ``pins``
the tool digest and the pin file, ``guard`` the comparison with the pins and the quarantine.
"""

from __future__ import annotations

from scoped_mcp.modules.mcp_proxy.module import McpProxyConfig, McpProxyModule

__all__ = ["McpProxyConfig", "McpProxyModule"]
