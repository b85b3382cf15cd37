"""Argument checks for the grafana module: identifiers, time ranges, datasource references.

Everything the agent sends that ends up in a URL path is an identifier matching ``UID`` (so it
cannot add path segments or a query). Dashboards, panels, queries and alert rules may reference
only the datasources the manifest lists; a reference to any other datasource, by uid or by name,
is refused wherever it sits in the JSON. A uid the agent passes as an argument (a datasource to
query, a folder to list) is scoped by the strategies at the end of this file before the body runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any, Final

from scoped_mcp.errors import InvalidArgument, ScopeViolation
from scoped_mcp.identity import AgentContext
from scoped_mcp.scoping import ScopeStrategy

UID: Final = re.compile(r"[A-Za-z0-9_-]{1,40}")
REF_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,20}")
TIME: Final = re.compile(r"now(-[0-9]{1,6}[smhdwMy])?(/[smhdwMy])?|[0-9]{10,13}")
DURATION: Final = re.compile(r"[0-9]{1,6}[smhd]")
EXPRESSION_UID: Final = "__expr__"
MAX_DEPTH: Final = 32
_REF_KEYS: Final = frozenset({"datasource", "datasourceUid"})


def uid(value: str, what: str = "uid") -> str:
    """``value`` if it is a Grafana uid (letters, digits, '-', '_', at most 40)."""
    if not isinstance(value, str) or not UID.fullmatch(value):
        raise InvalidArgument(f"{what} must be 1-40 letters, digits, '-' or '_'")
    return value


def folder_uid(agent_id: str) -> str:
    """The uid of the agent's own folder: ``agent-{agent_id}``, hashed when that is too long."""
    candidate = f"agent-{agent_id}"
    if UID.fullmatch(candidate):
        return candidate
    return "agent-" + hashlib.sha256(agent_id.encode()).hexdigest()[:32]


def time_value(value: str, what: str) -> str:
    """A Grafana relative time (``now-6h``) or epoch milliseconds."""
    if not isinstance(value, str) or not TIME.fullmatch(value):
        raise InvalidArgument(f"{what} must look like now, now-6h or epoch milliseconds")
    return value


def duration(value: str, what: str) -> str:
    """A short duration such as ``5m``."""
    if not isinstance(value, str) or not DURATION.fullmatch(value):
        raise InvalidArgument(f"{what} must look like 30s, 5m, 1h or 1d")
    return value


def size_checked(value: Any, what: str, limit: int) -> Any:
    """``value`` if its JSON encoding is at most ``limit`` bytes."""
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{what} must be plain JSON") from None
    if len(encoded.encode()) > limit:
        raise InvalidArgument(f"{what} is larger than {limit} bytes")
    return value


def _reference_uid(value: Any) -> str | None:
    if isinstance(value, dict):
        found = value.get("uid")
        return found if isinstance(found, str) else None
    return value if isinstance(value, str) else None


def check_references(value: Any, allowed: frozenset[str], *, depth: int = 0) -> None:
    """Refuse any ``datasource`` / ``datasourceUid`` in ``value`` that is not in ``allowed``."""
    if depth > MAX_DEPTH:
        raise InvalidArgument(f"JSON is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _REF_KEYS and item is not None:
                ref = _reference_uid(item)
                if ref is None or ref not in allowed:
                    raise ScopeViolation("a datasource that is not in this agent's allowlist")
            check_references(item, allowed, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_references(item, allowed, depth=depth + 1)


def queries_for(
    datasource: str, queries: Iterable[Any], *, max_queries: int = 10
) -> list[dict[str, Any]]:
    """The agent's queries, each pinned to ``datasource`` and given a checked refId."""
    pinned: list[dict[str, Any]] = []
    for index, query in enumerate(queries):
        if index >= max_queries:
            raise InvalidArgument(f"at most {max_queries} queries")
        if not isinstance(query, dict):
            raise InvalidArgument("each query must be an object")
        own = _reference_uid(query.get("datasource"))
        if query.get("datasource") is not None and own != datasource:
            raise ScopeViolation("a query names a datasource other than datasource_uid")
        check_references({k: v for k, v in query.items() if k != "datasource"}, frozenset())
        ref_id = query.get("refId", chr(ord("A") + index))
        if not isinstance(ref_id, str) or not REF_ID.fullmatch(ref_id):
            raise InvalidArgument("refId must be 1-20 letters, digits, '-' or '_'")
        pinned.append({**query, "refId": ref_id, "datasource": {"uid": datasource}})
    if not pinned:
        raise InvalidArgument("give at least one query")
    return pinned


class UidFormat(ScopeStrategy):
    """Accepts a Grafana uid (``uid``); a malformed one is an invalid argument named ``what``."""

    def __init__(self, what: str) -> None:
        self.what = what

    def apply(self, value: str, agent_ctx: AgentContext) -> str:
        return uid(value, self.what)
