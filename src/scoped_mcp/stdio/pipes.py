"""The wire's two descriptors, read and written on the event loop, never in a blocked thread.

While serving, fd 0 reads the null device and fd 1 writes to stderr, so module code and its
children can neither steal input nor corrupt the JSON-RPC stream; the wire lives on private
duplicates. A pipe, socket or terminal is used non-blocking and polled, so stopping the reader
(at a signal) is immediate and a client that stops reading stalls only the writers. A regular
file (``< requests.jsonl``) cannot be polled and never blocks: it is read in a worker thread.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import anyio

_log = logging.getLogger(__name__)
CHUNK = 64 * 1024
FINISH_SECONDS = 5.0


@dataclass(frozen=True)
class Wire:
    """Private duplicates of stdin and stdout."""

    read_fd: int
    write_fd: int


@contextmanager
def claimed_stdio() -> Iterator[Wire]:
    """Move the wire off fd 0/1 for the duration; restore both (and blocking mode) after."""
    sys.stdout.flush()
    wire = Wire(fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3), fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3))
    blocking = (os.get_blocking(wire.read_fd), os.get_blocking(wire.write_fd))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    try:
        os.set_blocking(wire.read_fd, False)
        os.set_blocking(wire.write_fd, False)
        yield wire
    finally:
        # The descriptions may be shared (a terminal): leave them as they were found.
        os.set_blocking(wire.read_fd, blocking[0])
        os.set_blocking(wire.write_fd, blocking[1])
        sys.stdout.flush()
        os.dup2(wire.read_fd, 0)
        os.dup2(wire.write_fd, 1)
        os.close(wire.read_fd)
        os.close(wire.write_fd)


class TooLong:
    """Stands for a line longer than the limit, which was skipped without being kept."""


TOO_LONG = TooLong()


class LineReader:
    """Lines from a descriptor, each at most ``max_bytes``; ``stop`` ends the input at once."""

    def __init__(self, fd: int, *, max_bytes: int) -> None:
        self._fd = fd
        self._max = max_bytes
        self._buffer = bytearray()
        self._skipping = False
        self._eof = False
        self._stopped = False
        self._read_scope: anyio.CancelScope | None = None
        self._threaded = False

    def stop(self) -> None:
        """Read nothing more: the next ``next_line`` (or the one waiting) reports end of input."""
        self._stopped = True
        if self._read_scope is not None:
            self._read_scope.cancel()

    async def next_line(self) -> bytes | TooLong | None:
        """The next line without its newline, ``TOO_LONG``, or ``None`` at end of input."""
        while not self._stopped:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                if self._skipping:
                    self._skipping = False
                    return TOO_LONG
                if len(line) > self._max:
                    return TOO_LONG
                return line
            if self._skipping or len(self._buffer) > self._max:
                self._skipping = True
                self._buffer.clear()
            if self._eof:
                return self._last()
            await self._fill()
        return None

    def _last(self) -> bytes | TooLong | None:
        """What is left at end of input: a final line without a newline, if any."""
        if self._skipping:
            self._skipping = False
            return TOO_LONG
        if not self._buffer:
            return None
        line = bytes(self._buffer)
        self._buffer.clear()
        return line

    async def _fill(self) -> None:
        chunk: bytes | None = None
        with anyio.CancelScope() as self._read_scope:
            chunk = await self._read()
        self._read_scope = None
        if chunk is None:
            return
        if not chunk:
            self._eof = True
        self._buffer += chunk

    async def _read(self) -> bytes | None:
        if self._threaded:
            return await anyio.to_thread.run_sync(os.read, self._fd, CHUNK)
        try:
            await anyio.wait_readable(self._fd)
        except PermissionError:
            # A regular file or /dev/null: not pollable, and a read never blocks.
            self._threaded = True
            return None
        try:
            return os.read(self._fd, CHUNK)
        except BlockingIOError:
            return None


class LineWriter:
    """Whole lines to a descriptor, one writer at a time; a closed reader drops them quietly."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = anyio.Lock()
        self._broken = False

    async def write(self, data: bytes) -> None:
        """Write all of ``data``, waiting (not blocking the loop) while the pipe is full.

        Until the first byte is out a cancelled write writes nothing; after it, the rest of the
        line is written shielded (a half line would corrupt every message after it), for at
        most ``FINISH_SECONDS``: a client that stops reading for that long loses the channel.
        """
        async with self._lock:
            view = memoryview(data)
            while view and not self._broken:
                written = self._try_write(view)
                if written:
                    view = view[written:]
                    break
                await self._writable()
            with anyio.move_on_after(FINISH_SECONDS, shield=True) as finishing:
                while view and not self._broken:
                    view = view[self._try_write(view) :]
                    if view:
                        await self._writable()
            if finishing.cancelled_caught:
                self._broken = True
                _log.warning("stdout stalled mid-line; no more answers are written")

    def _try_write(self, view: memoryview) -> int:
        try:
            return os.write(self._fd, view)
        except BlockingIOError:
            return 0
        except OSError as exc:
            self._broken = True
            _log.warning("stdout closed by the client", extra={"error": type(exc).__name__})
            return 0

    async def _writable(self) -> None:
        try:
            await anyio.wait_writable(self._fd)
        except PermissionError:
            await anyio.sleep(0.01)
