"""Serving MCP over stdio without losing answers when the client closes stdin early.

FastMCP's ``run_stdio_async`` stops serving the moment stdin reaches end of file, and requests
still being handled then get no answer. A client that writes its requests and closes its end at
once (a pipe, a script, a host shutting an agent down) would lose work it already asked for. Here
the read stream the server gets, at end of file, first waits until every request it passed on has
been answered (bounded by ``drain_seconds``), and the write stream marks each answer as it goes.
Both are thin wrappers: no extra task or buffer sits between the server and the pipes.

It uses two FastMCP internals (``_lifespan_manager``, ``_mcp_server``), which are pinned by the
``fastmcp>=4.1.2,<4.2`` requirement and covered by the stdio tests.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastmcp import FastMCP
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

DRAIN_SECONDS = 30.0


class _Pending:
    """Ids of requests passed to the server and not yet answered."""

    def __init__(self) -> None:
        self.ids: set[Any] = set()
        self.changed = anyio.Event()

    def add(self, message: Any) -> None:
        inner: Any = getattr(message, "message", None)
        method = getattr(inner, "method", None)
        if method is not None and getattr(inner, "id", None) is not None:
            self.ids.add(inner.id)
        elif method == "notifications/cancelled":
            # A cancelled request is never answered: stop waiting for it.
            params = getattr(inner, "params", None) or {}
            request_id = params.get("requestId") if isinstance(params, dict) else None
            self.ids.discard(request_id)
            self.changed.set()

    def answered(self, message: Any) -> None:
        inner: Any = getattr(message, "message", None)
        if getattr(inner, "method", None) is None and getattr(inner, "id", None) is not None:
            self.ids.discard(inner.id)
            self.changed.set()

    async def drained(self) -> None:
        while self.ids:
            self.changed = anyio.Event()
            await self.changed.wait()


class _DrainingReader:
    """The server's read stream: at end of input it first waits for pending answers."""

    def __init__(self, inner: Any, pending: _Pending, drain_seconds: float) -> None:
        self._inner = inner
        self._pending = pending
        self._drain_seconds = drain_seconds

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            item = await self._inner.receive()
        except anyio.EndOfStream:
            with anyio.move_on_after(self._drain_seconds):
                await self._pending.drained()
            raise
        self._pending.add(item)
        return item

    def __aiter__(self) -> _DrainingReader:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _DrainingReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _AnsweringWriter:
    """The server's write stream: every answer written settles its pending request."""

    def __init__(self, inner: Any, pending: _Pending) -> None:
        self._inner = inner
        self._pending = pending

    async def send(self, item: SessionMessage, /) -> None:
        await self._inner.send(item)
        self._pending.answered(item)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _AnsweringWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def run_stdio(mcp: FastMCP, *, drain_seconds: float = DRAIN_SECONDS) -> None:
    """Serve ``mcp`` on stdin/stdout until stdin ends and every request read has its answer."""
    from fastmcp.server.context import reset_transport, set_transport

    pending = _Pending()
    token = set_transport("stdio")
    try:
        async with mcp._lifespan_manager(), stdio_server() as (read_stream, write_stream):
            await mcp._mcp_server.run(
                _DrainingReader(read_stream, pending, drain_seconds),
                _AnsweringWriter(write_stream, pending),
                mcp._mcp_server.create_initialization_options(),
            )
    finally:
        reset_transport(token)
