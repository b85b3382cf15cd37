"""Audits the tool calls that never reach a tool body: unknown tools and invalid arguments.

The call pipeline (``invocation.py``) audits every call that reaches a tool. A call FastMCP rejects
first (a tool that is not registered for this agent, an argument of the wrong type) would otherwise
leave no record; this middleware writes one, with outcome ``denied``.
"""

from __future__ import annotations

import contextvars
import time
from typing import Any

from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import Middleware
from pydantic import ValidationError as PydanticValidationError

from scoped_mcp.audit.log import AuditLog, monotonic_ms

_reached: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "scoped_mcp_reached_tool", default=None
)


def mark_reached() -> None:
    """Called by the call pipeline: this call reached a tool body and is audited there."""
    holder = _reached.get()
    if holder is not None:
        holder[0] = True


class AuditBoundary(Middleware):
    """Writes a ``denied`` audit record for calls refused before any tool code ran."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    async def on_call_tool(self, context: Any, call_next: Any) -> Any:
        holder = [False]
        token = _reached.set(holder)
        started = time.perf_counter()
        try:
            return await call_next(context)
        except Exception as exc:
            if holder[0]:
                raise
            reason = _reason(exc)
            self._audit.record(
                "tool_call",
                tool=str(context.message.name)[:200],
                outcome="denied",
                duration_ms=monotonic_ms(started),
                error=reason,
                error_type=_error_type(reason),
            )
            raise ToolError(reason) from None
        finally:
            _reached.reset(token)


def _reason(exc: Exception) -> str:
    """A short explanation that never echoes argument values (they may be huge or hostile)."""
    name = type(exc).__name__
    if name == "NotFoundError":
        return "unknown tool"
    cause = exc.__cause__
    if isinstance(cause, PydanticValidationError):
        problems = [
            f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}"
            for error in cause.errors(include_url=False, include_input=False)[:5]
        ]
        return "invalid arguments: " + "; ".join(problems)
    if name == "ValidationError":
        return "invalid arguments"
    return f"refused before the tool ran ({name})"


def _error_type(reason: str) -> str:
    """A stable, low-cardinality name for why the call was refused (for metrics and spans)."""
    if reason == "unknown tool":
        return "UnknownTool"
    if reason.startswith("invalid arguments"):
        return "InvalidArguments"
    return "Refused"
