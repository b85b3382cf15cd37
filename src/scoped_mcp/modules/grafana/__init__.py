"""grafana: dashboards and alert rules in the agent's own folder, and scoped reads.

``module`` holds the tools and their scopes, ``checks`` the argument checks (identifiers, times,
datasource references inside nested JSON).
"""

from __future__ import annotations

from scoped_mcp.modules.grafana.module import GrafanaModule

__all__ = ["GrafanaModule"]
