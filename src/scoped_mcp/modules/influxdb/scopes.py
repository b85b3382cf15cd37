"""The scope strategies of the influxdb module: which buckets an agent may name, and its own.

An agent's own namespace is ``agent_{agent_id}.``: buckets it created there (and measurements it
wrote) belong to it alone. A name is a checked identifier before any allowlist is asked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from scoped_mcp.identity import AgentContext
from scoped_mcp.modules.influxdb.build import BUCKET, NAME, identifier, prefix_for
from scoped_mcp.scoping import AllOf, Allowlist, NamespaceScope, ScopeStrategy


class Identifier(ScopeStrategy):
    """Accepts an identifier matching ``pattern``; a malformed one is an invalid argument."""

    def __init__(self, what: str, pattern: re.Pattern[str] = NAME) -> None:
        self.what = what
        self.pattern = pattern

    def apply(self, value: str, agent_ctx: AgentContext) -> str:
        return identifier(value, self.what, self.pattern)


class BucketScope(ScopeStrategy):
    """Accepts a bucket the manifest lists, or one in the agent's own namespace."""

    def __init__(self, allowed: Iterable[str], *, write: bool) -> None:
        kind = "write " if write else ""
        self._name = Identifier("bucket", BUCKET)
        self._listed = Allowlist(allowed, refusal=f"bucket is not in this agent's {kind}allowlist")

    def apply(self, value: str, agent_ctx: AgentContext) -> str:
        value = self._name.apply(value, agent_ctx)
        if value.startswith(prefix_for(agent_ctx.agent_id)):
            return value
        return self._listed.apply(value, agent_ctx)


def own_bucket() -> ScopeStrategy:
    """A bucket name the agent picks, placed in its namespace: ``name`` -> ``agent_{id}.name``."""
    return AllOf(
        Identifier("name"),
        NamespaceScope("agent_{agent_id}", separator="."),
        Identifier("bucket", BUCKET),
    )
