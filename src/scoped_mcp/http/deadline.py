"""uvicorn's h11 protocol with a deadline for each request's headers (slowloris, idle sockets).

uvicorn closes a connection idle after a response (its keep-alive timeout), but not one that
never sends a complete request: a client that opens sockets and trickles header lines, or sends
nothing, would hold them for ever, and enough of them exhaust the server's descriptors. Here each
request's headers must be complete within ``HEADER_SECONDS`` of the connection opening or of the
previous response ending, or the connection is closed. Once the headers are in, the request may
take as long as it needs (an MCP event stream stays open). It also pins the protocol to h11
(16 KiB of headers at most), whatever else is installed.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS = 10.0


class DeadlineH11Protocol(H11Protocol):
    """``H11Protocol`` that closes a connection whose request headers are late."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request's headers arrived complete
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(HEADER_SECONDS, self._late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()
