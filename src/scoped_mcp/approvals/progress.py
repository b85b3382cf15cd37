"""MCP progress notifications for a held call, when the client asked for them.

The client asks by sending a ``progressToken`` in the request's ``_meta``; FastMCP's ``Context``
(current for the length of a tool call) then sends ``notifications/progress``. Without a token,
or outside a request, nothing is sent. A notification that cannot be sent never fails the call.
"""

from __future__ import annotations

import logging

_log = logging.getLogger(__name__)


async def report_progress(progress: float, total: float, message: str) -> None:
    """Send one progress notification for the current call, if its client gave a token."""
    from fastmcp.server.dependencies import get_context

    try:
        context = get_context()
    except RuntimeError:
        return
    try:
        await context.report_progress(progress, total, message)
    except Exception as exc:  # noqa: BLE001 - progress is advice; the call goes on without it
        _log.info("progress notification not sent", extra={"exc_type": type(exc).__name__})
