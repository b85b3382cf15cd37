"""influxdb: structured queries over allowed buckets, writes in the agent's own namespace.

``module`` holds the tools and their scopes, ``build`` turns structured input into Flux, line
protocol and delete predicates.
"""

from __future__ import annotations

from scoped_mcp.modules.influxdb.module import InfluxModule

__all__ = ["InfluxModule"]
