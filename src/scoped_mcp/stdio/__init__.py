"""The stdio transport: every request answered, everything bounded, answers written at once.

We read and write the pipes ourselves instead of using the SDK's ``stdio_server``, because that
one reads stdin in a worker thread as fast as it arrives (no bound, and a blocked read that a
signal cannot interrupt), drops lines it cannot parse without a word, and writes each answer
through two thread hops that fall behind under load. Here:

- a line is at most ``Limits.max_line_bytes`` long and nests at most ``Limits.max_depth``
  levels; a line that is not a valid request is answered with its JSON-RPC error (``framing``);
- at most ``Limits.max_in_flight`` requests (and about ``max_in_flight_bytes`` of them) wait for
  an answer; at the bound nothing more is read, so the client's writes block (``flow``);
- each answer is written on the event loop as its call completes (``pipes``);
- at end of input, and at ``StdioServer.stop`` (a signal), every request passed on is answered
  first, those still running waited for up to the drain bound; the dispatcher then answers the
  rest with an error as it cancels them.

FastMCP internals used: ``_lifespan_manager`` and ``_mcp_server``, pinned by the
``fastmcp>=4.1.2,<4.2`` requirement and covered by the stdio tests.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio
from fastmcp import FastMCP
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import JSONRPCError, JSONRPCRequest, JSONRPCResponse

from scoped_mcp.stdio.flow import InFlight
from scoped_mcp.stdio.framing import INVALID_REQUEST, Refusal, decode
from scoped_mcp.stdio.pipes import TOO_LONG, LineReader, LineWriter, claimed_stdio

_log = logging.getLogger(__name__)
DRAIN_SECONDS = 30.0
INTERNAL_ERROR = -32603


@dataclass(frozen=True)
class Limits:
    """The transport's bounds (documented in docs/threat-model.md)."""

    max_line_bytes: int = 4 * 1024 * 1024
    max_depth: int = 64
    max_in_flight: int = 64
    max_in_flight_bytes: int = 16 * 1024 * 1024
    drain_seconds: float = DRAIN_SECONDS


class _Reader:
    """The server's read stream: decoded, bounded requests; refusals answered on the spot."""

    def __init__(self, server: StdioServer, lines: LineReader, writer: _Writer) -> None:
        self._server = server
        self._lines = lines
        self._writer = writer

    @property
    def last_context(self) -> Any:
        return None

    async def receive(self) -> SessionMessage:
        limits, flight = self._server.limits, self._server.flight
        while True:
            await flight.room()
            line = await self._lines.next_line()
            if line is None:
                with anyio.move_on_after(self._server.drain_seconds) as self._server.draining:
                    await flight.drained()
                raise anyio.EndOfStream
            if line is TOO_LONG:
                too_long = f"invalid request: line longer than {limits.max_line_bytes} bytes"
                await self._writer.raw(Refusal(None, INVALID_REQUEST, too_long).encode())
                continue
            assert isinstance(line, bytes)
            decoded = decode(line, max_depth=limits.max_depth)
            if isinstance(decoded, Refusal):
                await self._writer.raw(decoded.encode())
            elif isinstance(decoded, JSONRPCRequest):
                unanswered = flight.opened(decoded.id, len(line))
                metadata = ServerMessageMetadata(on_request_unanswered=unanswered)
                return SessionMessage(decoded, metadata=metadata)
            elif decoded is not None:
                return SessionMessage(decoded)

    def __aiter__(self) -> _Reader:
        return self

    async def __anext__(self) -> SessionMessage:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self._lines.stop()

    async def __aenter__(self) -> _Reader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _Writer:
    """The server's write stream: one line per message, each answer settling its request."""

    def __init__(self, lines: LineWriter, flight: InFlight) -> None:
        self._lines = lines
        self._flight = flight
        self._closed = False

    async def send(self, item: SessionMessage, /) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        message = item.message
        answer_id = message.id if isinstance(message, JSONRPCResponse | JSONRPCError) else None
        try:
            data = message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
        except Exception as exc:  # noqa: BLE001 - an answer that cannot be encoded is still an answer
            _log.warning("message could not be encoded", extra={"exc_type": type(exc).__name__})
            if answer_id is None:
                return
            reason = "internal error: the answer could not be encoded"
            data = Refusal(answer_id, INTERNAL_ERROR, reason).encode()
        await self._lines.write(data)
        if answer_id is not None:
            self._flight.answered(answer_id)

    async def raw(self, data: bytes) -> None:
        """Write a line the transport itself composed (a refusal)."""
        await self._lines.write(data)

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> _Writer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class StdioServer:
    """Serves one FastMCP server on the process's stdin and stdout until input ends or ``stop``."""

    def __init__(self, mcp: FastMCP, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.flight = InFlight(
            max_requests=self.limits.max_in_flight, max_bytes=self.limits.max_in_flight_bytes
        )
        self.drain_seconds = self.limits.drain_seconds
        self._mcp = mcp
        self.draining: anyio.CancelScope | None = None
        self._lines: LineReader | None = None
        self._stopped = False

    def stop(self, *, drain_seconds: float) -> None:
        """Read no more; answer what was read, waiting up to ``drain_seconds`` for running calls."""
        self.drain_seconds = min(self.drain_seconds, drain_seconds)
        if self.draining is not None:
            # Input had already ended: the wait under way gets the shorter bound, too.
            soon = anyio.current_time() + drain_seconds
            self.draining.deadline = min(self.draining.deadline, soon)
        self._stopped = True
        self.flight.stop()
        if self._lines is not None:
            self._lines.stop()

    async def serve(self) -> None:
        """Serve until end of input (or ``stop``) and every request read has its answer."""
        from fastmcp.server.context import reset_transport, set_transport

        token = set_transport("stdio")
        try:
            with claimed_stdio() as wire:
                self._lines = LineReader(wire.read_fd, max_bytes=self.limits.max_line_bytes)
                if self._stopped:
                    self._lines.stop()
                writer = _Writer(LineWriter(wire.write_fd), self.flight)
                reader = _Reader(self, self._lines, writer)
                server = self._mcp._mcp_server
                async with self._mcp._lifespan_manager():
                    await server.run(reader, writer, server.create_initialization_options())
        finally:
            reset_transport(token)
