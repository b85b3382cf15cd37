"""One live upstream MCP connection, replaced between calls when its credentials change.

Invariant: a call runs start to finish on one connection. Before each call the module's
credential fingerprint (a keyed digest of the values the connection was built with) is compared
with the current connection's; when it differs, or the child has died, one caller builds a new
connection while the others wait for it, and the old one is retired: calls already running on
it finish there, and it is closed once the last of them returns. No call is cut off by a
rotation, and no call starts on a connection built from a superseded credential.

With a ``verify`` hook (the pin guard) a connection's tools are compared with the pins before it
is replaced because the credentials changed (listed on the old connection, so a changed upstream
never gets the new value), on every new connection before it serves a call, and whenever the
upstream sends ``notifications/tools/list_changed``. On a mismatch the upstream is blocked: the
current connection is retired and no new one is ever opened.
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
Verify = Callable[[list[mcp_types.Tool], str], Awaitable[str | None]]


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
        verify: Verify | None = None,
    ) -> None:
        self._verify = verify
        self.blocked: str | None = None  # why no call may reach the upstream any more
        self._watching: set[asyncio.Task[None]] = set()
        self._recheck_again = False
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

    def block(self, reason: str) -> None:
        """Refuse every call from now on with ``reason``; retire the current connection."""
        self.blocked = reason
        current, self._current = self._current, None
        if current is not None:
            current.retired = True
            if current.inflight == 0:
                self._close_later(current)

    async def close(self) -> None:
        """Close the current connection and wait (bounded) for retired ones to close."""
        for task in self._watching:
            task.cancel()
        current, self._current = self._current, None
        if current is not None:
            await _close(current, self._label)
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=self._start_seconds)

    async def _acquire(self) -> Connection:
        if self.blocked is not None:
            raise BackendError(self.blocked)
        fingerprint = await self._fingerprint()
        connection = self._current
        if connection is None or connection.fingerprint != fingerprint or not connection.alive():
            async with self._swap:
                connection = await self._replace_if_stale()
        # No await between the check above and this count: a swap cannot slip in between.
        connection.inflight += 1
        return connection

    async def _replace_if_stale(self) -> Connection:
        if self.blocked is not None:
            raise BackendError(self.blocked)
        fingerprint = await self._fingerprint()
        old = self._current
        if old is not None and old.fingerprint == fingerprint and old.alive():
            return old  # another caller replaced it while this one waited
        if old is not None and old.alive():
            # The credentials changed: the live upstream must still match its pins before a
            # fresh credential is handed to its replacement.
            await self._check(old, "rotation")
        try:
            new = await self._open()
        except UpstreamFailed as exc:
            raise BackendError(str(exc)) from None
        try:
            await self._check(new, "restart")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await _close(new, self._label)
            raise
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

    async def _check(self, connection: Connection, when: str) -> None:
        """List ``connection``'s tools and verify them; ``BackendError`` (and blocked) if not."""
        if self._verify is None:
            return
        try:
            with anyio.fail_after(self._start_seconds):
                listed = await connection.client.list_tools()
        except Exception as exc:  # noqa: BLE001 - foreign errors become one of ours, text dropped
            raise BackendError(
                f"the upstream's tools could not be listed to check their pins ({_kind(exc)})"
            ) from None
        refusal = await self._verify(listed, when)
        if refusal is not None:
            self.block(refusal)
            raise BackendError(refusal)

    def _tools_changed(self, holder: list[Connection]) -> None:
        """The upstream said its tools changed: re-list and verify them in a task of their own
        (the client's receive loop, which delivered the notice, must not wait on a request)."""
        if not holder or holder[0] is not self._current or self._verify is None:
            return
        if self._watching:
            # A flood of notices costs one listing at a time, and one more after it.
            self._recheck_again = True
            return
        task = asyncio.get_running_loop().create_task(self._recheck(holder[0]))
        self._watching.add(task)
        task.add_done_callback(self._watching.discard)

    async def _recheck(self, connection: Connection) -> None:
        try:
            again = True
            while again and self.blocked is None and connection is self._current:
                self._recheck_again = False
                await self._check(connection, "tools/list_changed")
                again = self._recheck_again
        except BackendError as exc:
            _log.warning(
                "upstream tools re-checked", extra={"proxy": self._label, "error": str(exc)}
            )

    async def _open(self) -> Connection:
        """Build a transport from fresh credentials and connect (initialize) within the limit.

        The MCP handshake era is asked for: only on it can an upstream tell us its tools changed.
        """
        transport, fingerprint = await self._connect()
        holder: list[Connection] = []

        async def on_message(message: mcp_types.ServerNotification | Exception) -> None:
            if isinstance(message, mcp_types.ToolListChangedNotification):
                self._tools_changed(holder)

        client: Client[Any] = Client(
            transport,
            timeout=self._call_seconds,
            init_timeout=self._start_seconds,
            message_handler=on_message,
            mode="legacy",
        )
        try:
            with anyio.fail_after(self._start_seconds):
                await client.__aenter__()  # type: ignore[no-untyped-call]
        except Exception as exc:  # noqa: BLE001 - foreign errors become one of ours, text dropped
            with anyio.CancelScope(shield=True):
                await _quietly_close(client)
            raise UpstreamFailed(f"the upstream did not start ({_kind(exc)})") from None
        self._generations += 1
        holder.append(Connection(client, transport, fingerprint, self._generations))
        return holder[0]

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
