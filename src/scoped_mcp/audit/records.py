"""Every audit record shape, built in one place and read from here by telemetry and ``audit tail``.

    call_start    a call about to run its tool body (written ahead: no record, no run)
    tool_call     one call that reached a tool: module, tool, mode, outcome, duration, error,
                  and a digest of the arguments (never their values)
    tool_call     with outcome ``denied`` and no module: refused before any tool code ran
                  (an unknown tool, invalid arguments)
    credential    a broker event: action (fetch, renew, revoke, ...), key names and backends
    credential_exposed  a released value was found (and scrubbed) in a tool's answer: its keys,
                  source and tool, and the remedy (lease revoked, or the key to rotate)
    server_start  the manifest and the tools registered
    server_stop   why the server stopped
    audit_gap     the log could not be written for a while: since when, why, what was lost
    http_refused  an HTTP request refused before MCP saw it: client address, status, reason
    tool_pin_mismatch  an upstream tool's definition differs from its pin: module, tool, the
                  pinned and the listed digest, what happens (``withdrawn``, ``not registered``)
    approval_requested   a call an approval rule holds: request id, tool, argument digest, expiry
    approved / denied / expired   what became of a request: channel and approver (or none)
    control_refused      a connection to the approvals control socket refused (peer uid, why)

Field reference: docs/audit.md. A ``Draft`` is the event and its fields before the log's
processors (identity, timestamp, redaction, chain) turn it into a line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

TOOL_CALL: Final = "tool_call"
CALL_START: Final = "call_start"
AUDIT_GAP: Final = "audit_gap"
CREDENTIAL: Final = "credential"
CREDENTIAL_EXPOSED: Final = "credential_exposed"
SERVER_START: Final = "server_start"
SERVER_STOP: Final = "server_stop"
HTTP_REFUSED: Final = "http_refused"
TOOL_PIN_MISMATCH: Final = "tool_pin_mismatch"
APPROVAL_REQUESTED: Final = "approval_requested"
APPROVAL_DECISIONS: Final = ("approved", "denied", "expired")
CONTROL_REFUSED: Final = "control_refused"
OUTCOMES: Final = ("ok", "denied", "error")

# Built once: json.dumps with keyword arguments constructs a new encoder on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Draft:
    """One record's event name and fields, before the log stamps and chains it."""

    event: str
    fields: dict[str, Any] = field(default_factory=dict)


def argument_digest(arguments: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps of the arguments: names, sizes, and one SHA-256 over all values.

    It runs when every call ends, so it must not fail: arguments the encoder cannot render (an
    integer past Python's digit limit) get ``sha256: null`` rather than no record.
    """
    try:
        canonical: str | None = _CANONICAL.encode(arguments)
    except (ValueError, TypeError, RecursionError):
        canonical = None
    shapes = {
        name: {"type": type(value).__name__, "len": len(value)}
        if isinstance(value, str | bytes | list | dict)
        else {"type": type(value).__name__}
        for name, value in arguments.items()
    }
    if canonical is None:
        return {"sha256": None, "shape": shapes}
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return {"sha256": digest, "shape": shapes}


def tool_call(
    *,
    module: str,
    tool: str,
    mode: str,
    outcome: str,
    duration_ms: float,
    error: str | None,
    error_type: str | None,
    args: dict[str, Any],
    approval: str | None = None,
) -> Draft:
    """A call that reached a tool, as the pipeline saw it end; ``args`` is ``argument_digest``;
    ``approval`` the id of the approval request that held it, if one did."""
    fields = {
        "module": module,
        "tool": tool,
        "mode": mode,
        "outcome": outcome,
        "duration_ms": duration_ms,
        "error": error,
        "error_type": error_type,
        "args": args,
    }
    if approval is not None:
        fields["approval"] = approval
    return Draft(TOOL_CALL, fields)


def call_start(
    *, module: str, tool: str, mode: str, args: dict[str, Any], approval: str | None = None
) -> Draft:
    """A call whose tool body is about to run: written first, so nothing runs unrecorded."""
    fields = {"module": module, "tool": tool, "mode": mode, "args": args}
    if approval is not None:
        fields["approval"] = approval
    return Draft(CALL_START, fields)


def audit_gap(*, since: str, error: str, lost: dict[str, int]) -> Draft:
    """The log is writable again: since ``since`` it was not (``error``); ``lost`` counts the
    records, by event, that could not be written meanwhile."""
    return Draft(AUDIT_GAP, {"since": since, "error": error, "lost": lost})


def denied(*, tool: str, duration_ms: float, error: str, error_type: str) -> Draft:
    """A call refused before any tool code ran (the tool name is cut to 200 characters)."""
    return Draft(
        TOOL_CALL,
        {
            "tool": tool[:200],
            "outcome": "denied",
            "duration_ms": duration_ms,
            "error": error,
            "error_type": error_type,
        },
    )


def credential(action: str, **fields: Any) -> Draft:
    """A broker event; ``fields`` name keys and backends, never values."""
    return Draft(CREDENTIAL, {"action": action, **fields})


def credential_exposed(
    *,
    key: list[str],
    backend: str,
    source: str,
    module: str,
    tool: str,
    dynamic: bool,
    remedy: str,
    lease: str | None,
) -> Draft:
    """A released value reached a tool's answer (scrubbed there); names keys, never the value.

    ``remedy``: ``revoked`` (the lease was revoked at once), ``revoke_failed``,
    ``already_revoked``, or ``rotate`` (a static value: rotate the key in its backend).
    """
    return Draft(
        CREDENTIAL_EXPOSED,
        {
            "key": key,
            "backend": backend,
            "source": source,
            "module": module,
            "tool": tool,
            "dynamic": dynamic,
            "remedy": remedy,
            "lease": lease,
        },
    )


def server_start(*, manifest: str, tools: Sequence[str]) -> Draft:
    """The server is serving these tools for this manifest."""
    return Draft(SERVER_START, {"manifest": manifest, "tools": list(tools)})


def server_stop(*, reason: str) -> Draft:
    """The server stopped (``stdin closed``, ``signal SIGTERM``, ...)."""
    return Draft(SERVER_STOP, {"reason": reason})


def http_refused(*, client: str, status: int, reason: str) -> Draft:
    """An HTTP request refused at the gate (no token, wrong token, foreign Host or Origin)."""
    return Draft(HTTP_REFUSED, {"client": client, "status": status, "reason": reason})


def tool_pin_mismatch(
    *, module: str, tool: str, pinned: str | None, listed: str | None, action: str, when: str
) -> Draft:
    """An upstream tool no longer matches its pin (``listed`` is None when it is gone)."""
    return Draft(
        TOOL_PIN_MISMATCH,
        {
            "module": module,
            "tool": tool,
            "pinned_digest": pinned,
            "listed_digest": listed,
            "action": action,
            "when": when,
        },
    )


def approval_requested(
    *,
    approval: str,
    module: str,
    tool: str,
    args: dict[str, Any],
    expires_in: float,
    channels: Sequence[str],
    failed: Sequence[str] = (),
) -> Draft:
    """A call held for approval: the request's id, the call it is bound to (the argument digest,
    never the values), and the channels told of it (``failed``: those that could not be)."""
    return Draft(
        APPROVAL_REQUESTED,
        {
            "approval": approval,
            "module": module,
            "tool": tool,
            "args": args,
            "expires_in": round(expires_in, 1),
            "channels": list(channels),
            "failed": list(failed),
        },
    )


def approval_decided(
    decision: str,
    *,
    approval: str,
    tool: str,
    channel: str | None,
    approver: str | None,
    reason: str | None = None,
) -> Draft:
    """``approved``, ``denied`` or ``expired``: by whom (channel and approver) and why."""
    if decision not in APPROVAL_DECISIONS:
        raise ValueError(f"unknown approval decision {decision!r}")
    return Draft(
        decision,
        {
            "approval": approval,
            "tool": tool,
            "channel": channel,
            "approver": approver,
            "reason": reason,
        },
    )


def control_refused(*, peer_uid: int | None, reason: str) -> Draft:
    """A connection to the approvals control socket refused before any request was read."""
    return Draft(CONTROL_REFUSED, {"peer_uid": peer_uid, "reason": reason})
