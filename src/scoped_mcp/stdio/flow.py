"""The requests in flight: passed to the server, not yet answered (or settled unanswered).

The reader asks ``room`` before it reads the next line, so at most ``max_requests`` requests
(and about ``max_bytes`` of request text) wait at once; past that the server stops reading and
the client's writes block on the full pipe. ``drained`` is what end of input waits for.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

import anyio
from mcp_types import RequestId


class _Ticket:
    """One request in flight and the bytes it holds."""

    __slots__ = ("settled", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.settled = False


class InFlight:
    """Counts the requests in flight; wakes the reader and the drain as they settle."""

    def __init__(self, *, max_requests: int, max_bytes: int) -> None:
        self._max_requests = max_requests
        self._max_bytes = max_bytes
        self._open: dict[RequestId, deque[_Ticket]] = {}
        self._count = 0
        self._bytes = 0
        self._changed = anyio.Event()
        self._stopping = False

    @property
    def count(self) -> int:
        """How many requests are in flight."""
        return self._count

    def _full(self) -> bool:
        return self._count >= self._max_requests or self._bytes >= self._max_bytes

    async def room(self) -> None:
        """Return once another request may be read (at once while stopping)."""
        while self._full() and not self._stopping:
            await self._wait()

    def stop(self) -> None:
        """No more requests will be read: wake a reader waiting for room."""
        self._stopping = True
        self._wake()

    def opened(self, request_id: RequestId, size: int) -> Callable[[], Awaitable[None]]:
        """Count a request; the returned callback settles it if it ends without an answer."""
        ticket = _Ticket(size)
        self._open.setdefault(request_id, deque()).append(ticket)
        self._count += 1
        self._bytes += size

        async def unanswered() -> None:
            self._settle(ticket)
            tickets = self._open.get(request_id)
            if tickets is not None and ticket in tickets:
                tickets.remove(ticket)
                if not tickets:
                    del self._open[request_id]

        return unanswered

    def answered(self, request_id: RequestId) -> None:
        """An answer for ``request_id`` was written: settle the oldest request with that id."""
        tickets = self._open.get(request_id)
        if not tickets:
            return
        self._settle(tickets.popleft())
        if not tickets:
            del self._open[request_id]

    def _settle(self, ticket: _Ticket) -> None:
        if ticket.settled:
            return
        ticket.settled = True
        self._count -= 1
        self._bytes -= ticket.size
        self._wake()

    async def drained(self) -> None:
        """Return once no request is in flight."""
        while self._count:
            await self._wait()

    async def _wait(self) -> None:
        await self._changed.wait()

    def _wake(self) -> None:
        # A fresh event for the next wait; everyone waiting now holds the old one.
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
