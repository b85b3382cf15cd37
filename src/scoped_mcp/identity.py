"""The agent's identity, read once from the environment and validated.

``AGENT_ID`` becomes part of file paths, database names and topics, so it is held to a charset that
cannot express traversal, separators or shell/SQL metacharacters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from scoped_mcp.errors import IdentityError

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_RULE = "1-64 characters of A-Z a-z 0-9 _ -, starting with a letter or digit"


def validate_name(value: str, what: str) -> str:
    """Return ``value`` if it is a safe identifier, else raise ``IdentityError`` naming ``what``."""
    if not _SAFE.fullmatch(value):
        shown = value if len(value) <= 80 and value.isprintable() else repr(value[:80])
        raise IdentityError(
            f"{what} {shown!r} is not allowed: it must be {_RULE}",
            fix=f"set {what} to a value such as 'research-01'",
        )
    return value


@dataclass(frozen=True, slots=True)
class AgentContext:
    """Who this server process serves. Immutable for the life of the process."""

    agent_id: str
    agent_type: str

    def __post_init__(self) -> None:
        validate_name(self.agent_id, "AGENT_ID")
        validate_name(self.agent_type, "AGENT_TYPE")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AgentContext:
        """Build the context from ``AGENT_ID`` and ``AGENT_TYPE``; both are required."""
        missing = [name for name in ("AGENT_ID", "AGENT_TYPE") if not environ.get(name)]
        if missing:
            raise IdentityError(
                f"{' and '.join(missing)} not set: scoped-mcp serves exactly one agent",
                fix="set AGENT_ID (this instance, e.g. research-01) and AGENT_TYPE (its role, "
                "e.g. research) in the MCP client's env block",
            )
        return cls(agent_id=environ["AGENT_ID"], agent_type=environ["AGENT_TYPE"])

    def expand(self, template: str) -> str:
        """Replace ``{agent_id}`` and ``{agent_type}`` in ``template``; no other fields exist."""
        return template.replace("{agent_id}", self.agent_id).replace(
            "{agent_type}", self.agent_type
        )
