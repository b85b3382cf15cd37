"""Serving MCP over stdio without losing answers when the client closes stdin early.

FastMCP's ``run_stdio_async`` stops serving the moment stdin reaches end of file, and requests
still being handled then get no answer. A client that writes its requests and closes its end at
once (a pipe, a script, a host shutting an agent down) would lose work it already asked for. Here
the read side is relayed through a stream that, at end of file, waits until every request it
passed on has been answered (bounded by ``drain_seconds``) before it ends too.

It uses two FastMCP internals (``_lifespan_manager``, ``_mcp_server``), which are pinned by the
``fastmcp>=4.1.2,<4.2`` requirement and covered by the stdio tests.
"""

from __future__ import annotations

from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
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


async def _relay_in(
    source: MemoryObjectReceiveStream[Any],
    sink: MemoryObjectSendStream[Any],
    pending: _Pending,
    drain_seconds: float,
) -> None:
    async with sink:
        async for message in source:
            pending.add(message)
            await sink.send(message)
        with anyio.move_on_after(drain_seconds):
            await pending.drained()


async def _relay_out(
    source: MemoryObjectReceiveStream[SessionMessage],
    sink: MemoryObjectSendStream[SessionMessage],
    pending: _Pending,
) -> None:
    async with sink:
        async for message in source:
            await sink.send(message)
            pending.answered(message)


async def run_stdio(mcp: FastMCP, *, drain_seconds: float = DRAIN_SECONDS) -> None:
    """Serve ``mcp`` on stdin/stdout until stdin ends and every request read has its answer."""
    from fastmcp.server.context import reset_transport, set_transport

    pending = _Pending()
    token = set_transport("stdio")
    try:
        async with (
            mcp._lifespan_manager(),
            stdio_server() as (read_stream, write_stream),
            anyio.create_task_group() as group,
        ):
            in_send, in_receive = anyio.create_memory_object_stream[Any](0)
            out_send, out_receive = anyio.create_memory_object_stream[SessionMessage](0)
            group.start_soon(_relay_in, read_stream, in_send, pending, drain_seconds)
            group.start_soon(_relay_out, out_receive, write_stream, pending)
            async with out_send:
                await mcp._mcp_server.run(
                    in_receive, out_send, mcp._mcp_server.create_initialization_options()
                )
            # Both relays end by themselves: the input one at end of file, the output one when
            # the server has closed its side, after the last answer is written.
    finally:
        reset_transport(token)
