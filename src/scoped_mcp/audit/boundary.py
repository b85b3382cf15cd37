"""Audits the tool calls that never reach a tool body: unknown tools and invalid arguments.

The call pipeline (``pipeline.py``) audits every call that reaches a tool and says so by raising
``AuditedToolError``. A call FastMCP rejects first (a tool that is not registered for this agent,
an argument of the wrong type, a string that is not valid Unicode) would otherwise leave no
record; this middleware writes one, with outcome ``denied``.
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
        tool = _printable(str(context.message.name))
        # A lone surrogate (JSON "\ud800") is no text: no tool, schema or audit line can take it.
        where = _unencodable(context.message.arguments)
        if where is not None or tool != context.message.name:
            reason = f"invalid arguments: {where or 'name'}: not valid Unicode (a lone surrogate)"
            self._deny(tool, started, reason, "InvalidArguments")
            raise ToolError(reason)
        try:
            return await call_next(context)
        except AuditedToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever refused the call, it is audited
            reason, error_type = _refusal(exc)
            self._deny(tool, started, reason, error_type)
            raise ToolError(reason) from None

    def _deny(self, tool: str, started: float, reason: str, error_type: str) -> None:
        self._audit.write(
            records.denied(
                tool=tool, duration_ms=monotonic_ms(started), error=reason, error_type=error_type
            )
        )


def _printable(text: str) -> str:
    """``text`` with any lone surrogate written as an escape, so it can be audited."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _unencodable(value: Any, path: str = "") -> str | None:
    """The path (``a.0.b``) of the first string in ``value`` that is not valid Unicode."""
    if isinstance(value, str):
        return path or "arguments" if _printable(value) != value else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = _printable(str(key))
            inner = f"{path}.{name}" if path else name
            if name != key:
                return inner
            found = _unencodable(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _unencodable(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


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
