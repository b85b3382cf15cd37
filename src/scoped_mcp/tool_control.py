"""What a module may do to the running server: withdraw its own tools, and audit why.

``ToolControl`` is handed to each module before its ``startup`` (``ToolModule.bind_server``).
Withdrawing removes the tools from FastMCP, so the client's next ``tools/list`` no longer shows
them and a call to one is refused as unknown, then sends ``notifications/tools/list_changed`` to
every client session seen so far (``SessionWatch``). The notification reaches clients that
connected with the MCP handshake; a 2026-07-28 connection has no standing channel for it
(FastMCP serves no ``subscriptions/listen``), and sees the change on its next ``tools/list``.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import mcp_types
from fastmcp import FastMCP
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext

from scoped_mcp.audit.log import AuditLog
from scoped_mcp.audit.records import Draft

_log = logging.getLogger(__name__)


class SessionWatch(Middleware):
    """Remembers the client sessions that sent requests, so a notification can reach them."""

    def __init__(self) -> None:
        self._sessions: weakref.WeakSet[Any] = weakref.WeakSet()

    async def on_request(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        fastmcp_context = context.fastmcp_context
        if fastmcp_context is not None and fastmcp_context.request_context is not None:
            # Watching is best effort: it must never be what fails a request.
            with suppress(TypeError, RuntimeError):
                self._sessions.add(fastmcp_context.session)
        return await call_next(context)

    async def tools_changed(self) -> int:
        """Send ``notifications/tools/list_changed`` to each live session; how many took it."""
        sent = 0
        for session in list(self._sessions):
            try:
                await session.send_notification(mcp_types.ToolListChangedNotification())
                sent += 1
            except Exception as exc:  # noqa: BLE001 - a closed session must not stop the others
                _log.info(
                    "tools/list_changed not delivered", extra={"exc_type": type(exc).__name__}
                )
        return sent


class ToolControl:
    """One module's handle on the server: its registered tools, withdrawal, audit records."""

    def __init__(self, *, key: str, mcp: FastMCP, audit: AuditLog, sessions: SessionWatch) -> None:
        self.key = key
        self._mcp = mcp
        self._audit = audit
        self._sessions = sessions
        self.registered: dict[str, str] = {}  # the module's own tool name -> registered name

    def audit(self, draft: Draft) -> None:
        """Write one audit record on the module's behalf."""
        self._audit.write(draft)

    async def withdraw(self, names: Sequence[str]) -> list[str]:
        """Remove these of the module's tools (named without prefix); those that were removed."""
        removed = []
        for name in names:
            registered = self.registered.pop(name, None)
            if registered is None:
                continue
            try:
                self._mcp.local_provider.remove_tool(registered)
            except KeyError:
                continue
            removed.append(name)
        if removed:
            await self._sessions.tools_changed()
        return removed
