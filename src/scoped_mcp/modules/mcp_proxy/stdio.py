"""An MCP stdio client transport whose child gets exactly the environment it is given.

The MCP SDK's stdio client merges HOME, PATH, USER and friends from our own environment into the
child's; an upstream holding a leased credential must see nothing it was not handed explicitly,
so this transport spawns the process itself. Its stdout carries only the protocol; its stderr is
relayed line by line into the ops log (which scrubs secrets) or discarded, never to our stdout.
Stopping it closes stdin, waits, terminates, waits, kills, and reaps the process.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, Literal

import anyio
import anyio.abc
import mcp_types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from fastmcp.client.transports.base import ClientTransport, SessionKwargs, TransportOptions
from mcp import ClientSession
from mcp.shared.message import SessionMessage

_log = logging.getLogger(__name__)
MAX_LINE_BYTES = 16 * 1024 * 1024
MAX_STDERR_LINE = 2000
StderrMode = Literal["log", "discard"]


class ExactEnvStdio(ClientTransport):
    """Runs ``command args`` with exactly ``env`` and speaks MCP over its stdin/stdout."""

    def __init__(
        self,
        command: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None,
        stderr: StderrMode,
        stop_seconds: float,
        label: str,
        max_line_bytes: int = MAX_LINE_BYTES,
        pass_fds: Sequence[int] = (),
        after_spawn: Callable[[], None] | None = None,
    ) -> None:
        self._argv = [command, *args]
        self._pass_fds = tuple(pass_fds)
        self._after_spawn = after_spawn
        self._max_line_bytes = max_line_bytes
        self._env = dict(env)
        self._cwd = cwd
        self._stderr = stderr
        self._stop_seconds = stop_seconds
        self._label = label
        self.process: anyio.abc.Process | None = None
        self._stdout_closed = False

    def __repr__(self) -> str:
        # The environment holds credentials: never part of a repr.
        return f"ExactEnvStdio({self._argv[0]!r}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        """True while the child runs and its stdout is open (EOF is often seen before exit)."""
        running = self.process is not None and self.process.returncode is None
        return running and not self._stdout_closed

    @asynccontextmanager
    async def connect_session(
        self,
        *,
        transport_options: TransportOptions | None = None,
        **session_kwargs: Any,
    ) -> AsyncIterator[ClientSession]:
        options = transport_options or TransportOptions()
        env, self._env = self._env, {}  # the child has it now; we keep no copy
        try:
            process = await anyio.open_process(
                self._argv,
                env=env,
                cwd=self._cwd,
                stderr=subprocess.PIPE if self._stderr == "log" else subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=self._pass_fds,
            )
        finally:
            env.clear()
            # Descriptors handed to the child (credential memfds) are the child's alone now.
            if self._after_spawn is not None:
                self._after_spawn()
        self.process = process
        to_session, from_child = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        to_child, from_session = anyio.create_memory_object_stream[SessionMessage](0)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._read_stdout, process, to_session)
                group.start_soon(self._write_stdin, process, from_session)
                if process.stderr is not None:
                    group.start_soon(self._relay_stderr, process)
                try:
                    kwargs: SessionKwargs = session_kwargs  # type: ignore[assignment]
                    async with options.session_class(from_child, to_child, **kwargs) as session:
                        yield session
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._stop(process)
                    group.cancel_scope.cancel()
        finally:
            for stream in (to_session, from_child, to_child, from_session):
                stream.close()

    async def _read_stdout(
        self,
        process: anyio.abc.Process,
        sink: MemoryObjectSendStream[SessionMessage | Exception],
    ) -> None:
        assert process.stdout is not None
        pending: list[bytes] = []  # the current line's chunks: joined once, not per chunk
        held = 0
        async with sink:
            try:
                async for chunk in process.stdout:
                    held += len(chunk)
                    if held > self._max_line_bytes:
                        _log.warning(
                            "upstream message too large",
                            extra={"proxy": self._label, "limit": self._max_line_bytes},
                        )
                        return
                    if b"\n" not in chunk:
                        pending.append(chunk)
                        continue
                    *lines, rest = b"".join([*pending, chunk]).split(b"\n")
                    pending, held = [rest], len(rest)
                    for line in lines:
                        if line.strip():
                            await sink.send(_parse(line))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                return
            finally:
                self._stdout_closed = True

    async def _write_stdin(
        self, process: anyio.abc.Process, source: MemoryObjectReceiveStream[SessionMessage]
    ) -> None:
        assert process.stdin is not None
        async with source:
            try:
                async for message in source:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send(data.encode() + b"\n")
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                return

    async def _relay_stderr(self, process: anyio.abc.Process) -> None:
        assert process.stderr is not None
        buffer = b""
        try:
            async for chunk in process.stderr:
                *lines, buffer = (buffer + chunk).split(b"\n")
                buffer = buffer[-MAX_STDERR_LINE:]
                for line in lines:
                    text = line.decode("utf-8", "replace").rstrip()[:MAX_STDERR_LINE]
                    if text:
                        # The ops log formatter scrubs every released secret from this.
                        _log.info("upstream stderr", extra={"proxy": self._label, "line": text})
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            return

    async def _stop(self, process: anyio.abc.Process) -> None:
        """Close stdin, then terminate, then kill, each after a bounded wait; always reap."""
        if process.stdin is not None:
            with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await process.stdin.aclose()
        for signum in (None, signal.SIGTERM, signal.SIGKILL):
            if signum is not None and process.returncode is None:
                try:
                    # The child leads its own process group: its helpers go with it.
                    os.killpg(process.pid, signum)
                except (ProcessLookupError, PermissionError):
                    with suppress(ProcessLookupError):
                        process.kill()
            with anyio.move_on_after(self._stop_seconds):
                await process.wait()
            if process.returncode is not None:
                break
        if process.returncode is None:
            _log.warning("upstream did not exit", extra={"proxy": self._label, "pid": process.pid})
        with anyio.move_on_after(self._stop_seconds):
            await process.aclose()


def _parse(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line))
    except ValueError as exc:
        _log.warning("upstream sent a line that is not JSON-RPC", extra={"bytes": len(line)})
        return exc
