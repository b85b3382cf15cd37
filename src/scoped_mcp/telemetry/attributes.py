"""Span and metric attributes taken from an audit record, by allow-list.

Only the fields named here ever leave the process: identity, module, tool, mode, outcome, error
type, and for credentials the key *names*, backend, source path and lease id. Never an argument
value (records hold only a digest of those), never an error message, never a secret.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.util.types import AttributeValue

PREFIX = "scoped_mcp."
TOOL_FIELDS = {
    "module": "scoped_mcp.module",
    "tool": "scoped_mcp.tool",
    "mode": "scoped_mcp.tool.mode",
    "outcome": "scoped_mcp.outcome",
    "error_type": "scoped_mcp.error.type",
}
CREDENTIAL_FIELDS = {
    "action": "scoped_mcp.credential.action",
    "key": "scoped_mcp.credential.keys",
    "backend": "scoped_mcp.credential.backend",
    "source": "scoped_mcp.credential.source",
    "lease": "scoped_mcp.credential.lease",
    "lease_ttl": "scoped_mcp.credential.lease_ttl",
    "renewable": "scoped_mcp.credential.renewable",
    "status": "scoped_mcp.error.type",
}
METRIC_FIELDS = ("module", "tool", "mode", "outcome")


def identity(record: dict[str, Any]) -> dict[str, AttributeValue]:
    """The agent the record belongs to."""
    return {
        "scoped_mcp.agent.id": str(record.get("agent_id", "")),
        "scoped_mcp.agent.type": str(record.get("agent_type", "")),
    }


def pick(record: dict[str, Any], fields: dict[str, str]) -> dict[str, AttributeValue]:
    """The allow-listed fields of ``record``, renamed, as OpenTelemetry attribute values."""
    out: dict[str, AttributeValue] = {}
    for field, name in fields.items():
        value = record.get(field)
        if isinstance(value, str | bool | int | float):
            out[name] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[name] = list(value)
    return out


def tool_call(record: dict[str, Any]) -> dict[str, AttributeValue]:
    """A tool call's attributes; a failed call without a named error type gets its outcome."""
    out = {**identity(record), **pick(record, TOOL_FIELDS)}
    outcome = record.get("outcome")
    if outcome != "ok" and isinstance(outcome, str):
        out.setdefault("scoped_mcp.error.type", outcome)
    return out


def metric_labels(record: dict[str, Any]) -> dict[str, AttributeValue]:
    """Low-cardinality labels of a tool call (no identity: that is on the resource)."""
    return {name: str(record[name]) for name in METRIC_FIELDS if name in record}
