"""Audits the tool calls that never reach a tool body: unknown tools and invalid arguments.

The call pipeline (``pipeline.py``) audits every call that reaches a tool and says so by raising
``AuditedToolError``. A call FastMCP rejects first (a tool that is not registered for this agent,
an argument of the wrong type) would otherwise leave no record; this middleware writes one, with
outcome ``denied``.
"""

from __future__ import annotations

import time
from typing import Any

from fastmcp.exceptions import NotFoundError, ToolError, ValidationError
from fastmcp.server.middleware import Middleware
from pydantic import ValidationError as PydanticValidationError

from scoped_mcp.audit import records
from scoped_mcp.audit.log import AuditLog, monotonic_ms
from scoped_mcp.pipeline import AuditedToolError


class AuditBoundary(Middleware):
    """Writes a ``denied`` audit record for calls refused before any tool code ran."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    async def on_call_tool(self, context: Any, call_next: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call_next(context)
        except AuditedToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever refused the call, it is audited
            reason, error_type = _refusal(exc)
            self._audit.write(
                records.denied(
                    tool=str(context.message.name),
                    duration_ms=monotonic_ms(started),
                    error=reason,
                    error_type=error_type,
                )
            )
            raise ToolError(reason) from None


def _refusal(exc: Exception) -> tuple[str, str]:
    """A short explanation that never echoes argument values, and its low-cardinality name."""
    if isinstance(exc, NotFoundError):
        return "unknown tool", "UnknownTool"
    cause = exc.__cause__
    if isinstance(cause, PydanticValidationError):
        problems = [
            f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}"
            for error in cause.errors(include_url=False, include_input=False)[:5]
        ]
        return "invalid arguments: " + "; ".join(problems), "InvalidArguments"
    if isinstance(exc, ValidationError):
        return "invalid arguments", "InvalidArguments"
    return f"refused before the tool ran ({type(exc).__name__})", "Refused"
