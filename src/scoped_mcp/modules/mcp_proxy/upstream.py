"""One live upstream MCP connection, replaced between calls when its credentials change.

Invariant: a call runs start to finish on one connection. Before each call the module's
credential fingerprint (a keyed digest of the values the connection was built with) is compared
with the current connection's; when it differs, or the child has died, one caller builds a new
connection while the others wait for it, and the old one is retired: calls already running on
it finish there, and it is closed once the last of them returns. No call is cut off by a
rotation, and no call starts on a connection built from a superseded credential.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types
from fastmcp import Client
from fastmcp.client.transports.base import ClientTransport

from scoped_mcp.errors import BackendError

_log = logging.getLogger(__name__)
Fingerprint = Callable[[], Awaitable[bytes]]
Connector = Callable[[], Awaitable[tuple[ClientTransport, bytes]]]


class UpstreamFailed(Exception):
    """The upstream could not be started or listed; the message names the cause, no values."""


@dataclass(eq=False, repr=False)
class Connection:
    """One connected upstream (a child process or an HTTP session) and the calls it is serving."""

    client: Client[Any]
    transport: ClientTransport
    fingerprint: bytes
    generation: int
    inflight: int = 0
    retired: bool = False
    closed: anyio.Event = field(default_factory=anyio.Event)

    @property
    def pid(self) -> int | None:
        pid = getattr(self.transport, "pid", None)
        return pid if isinstance(pid, int) else None

    def alive(self) -> bool:
        check = getattr(self.transport, "alive", None)
        return bool(check()) if callable(check) else self.client.is_connected()


class Upstream:
    """Hands each call a connection built from the current credentials."""

    def __init__(
        self,
        *,
        connect: Connector,
        fingerprint: Fingerprint,
        start_seconds: float,
        call_seconds: float,
        label: str,
    ) -> None:
        self._connect = connect
        self._fingerprint = fingerprint
        self._start_seconds = start_seconds
        self._call_seconds = call_seconds
        self._label = label
        self._current: Connection | None = None
        self._swap = anyio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._generations = 0

    @property
    def current(self) -> Connection | None:
        return self._current

    async def start(self) -> list[mcp_types.Tool]:
        """Open the first connection and list the upstream's tools."""
        connection = await self._open()
        self._current = connection
        try:
            with anyio.fail_after(self._start_seconds):
                return await connection.client.list_tools()
        except Exception as exc:  # noqa: BLE001 - foreign errors become one of ours, text dropped
            raise UpstreamFailed(f"listing the upstream's tools failed ({_kind(exc)})") from None

    async def call(self, name: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        """Call an upstream tool on the current connection; BackendError when it cannot."""
        connection = await self._acquire()
        try:
            with anyio.fail_after(self._call_seconds):
                return await connection.client.call_tool_mcp(name, arguments)
        except TimeoutError:
            raise BackendError(f"upstream timed out after {self._call_seconds:g}s") from None
        except Exception as exc:  # noqa: BLE001 - foreign errors become one of ours, text dropped
            raise BackendError(f"upstream call failed ({_kind(exc)})") from None
        finally:
            connection.inflight -= 1
            if connection.retired and connection.inflight == 0:
                self._close_later(connection)

    async def close(self) -> None:
        """Close the current connection and wait (bounded) for retired ones to close."""
        current, self._current = self._current, None
        if current is not None:
            await _close(current, self._label)
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=self._start_seconds)

    async def _acquire(self) -> Connection:
        fingerprint = await self._fingerprint()
        connection = self._current
        if connection is None or connection.fingerprint != fingerprint or not connection.alive():
            async with self._swap:
                connection = await self._replace_if_stale()
        # No await between the check above and this count: a swap cannot slip in between.
        connection.inflight += 1
        return connection

    async def _replace_if_stale(self) -> Connection:
        fingerprint = await self._fingerprint()
        old = self._current
        if old is not None and old.fingerprint == fingerprint and old.alive():
            return old  # another caller replaced it while this one waited
        try:
            new = await self._open()
        except UpstreamFailed as exc:
            raise BackendError(str(exc)) from None
        self._current = new
        if old is not None:
            reason = "credentials changed" if old.alive() else "upstream exited"
            _log.info(
                "upstream replaced",
                extra={"proxy": self._label, "reason": reason, "generation": new.generation},
            )
            old.retired = True
            if old.inflight == 0:
                self._close_later(old)
        return new

    async def _open(self) -> Connection:
        """Build a transport from fresh credentials and connect (initialize) within the limit."""
        transport, fingerprint = await self._connect()
        client: Client[Any] = Client(
            transport, timeout=self._call_seconds, init_timeout=self._start_seconds
        )
        try:
            with anyio.fail_after(self._start_seconds):
                await client.__aenter__()  # type: ignore[no-untyped-call]
        except Exception as exc:  # noqa: BLE001 - foreign errors become one of ours, text dropped
            with anyio.CancelScope(shield=True):
                await _quietly_close(client)
            raise UpstreamFailed(f"the upstream did not start ({_kind(exc)})") from None
        self._generations += 1
        return Connection(client, transport, fingerprint, self._generations)

    def _close_later(self, connection: Connection) -> None:
        # Closed in a task of its own so the call that drained it returns at once; ``close``
        # waits for these.
        task = asyncio.get_running_loop().create_task(_close(connection, self._label))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _close(connection: Connection, label: str) -> None:
    if connection.closed.is_set():
        return
    connection.closed.set()
    with anyio.CancelScope(shield=True):
        await _quietly_close(connection.client)
    _log.info("upstream stopped", extra={"proxy": label, "generation": connection.generation})


async def _quietly_close(client: Client[Any]) -> None:
    try:
        await client.close()  # type: ignore[no-untyped-call]
    except Exception as exc:  # noqa: BLE001 - closing must not fail the caller
        _log.warning("closing the upstream failed", extra={"exc_type": type(exc).__name__})


def _kind(exc: BaseException) -> str:
    """The exception's type, and its message only for our own errors (foreign text can leak)."""
    if isinstance(exc, UpstreamFailed | BackendError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__
