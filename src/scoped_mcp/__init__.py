"""scoped-mcp: a per-agent MCP tool server with a credential broker and an audit trail."""

from __future__ import annotations

__version__ = "0.1.0"
