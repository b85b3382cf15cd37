"""The audit file itself: append-only, 0600, one ``write()`` per record, rotated by size.

Rotation renames ``log`` to ``log.1`` (``log.1`` to ``log.2``, ..., dropping ``log.{keep}``) and
opens a fresh ``log``. The caller links the fresh file's first record to the old file's last line,
so the chain runs across files.

One writer per file: the file's server holds an exclusive ``flock`` on a sibling lock file,
``.{name}.lock``, which holds its pid. The lock is on a sibling, not on the log, because rotation
renames the log: a lock on it would move to ``log.1``, and between the rename and the reopen a
second server could take the fresh ``log``. ``flock`` rather than ``lockf``: a POSIX record lock
belongs to the process and is dropped when any descriptor of the file closes, and never conflicts
within one process; an ``flock`` belongs to the open file, so even a second log in the same process
is refused.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from scoped_mcp.audit.chain import Tail, read_tail

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_KEEP = 5
_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


class LogInUse(OSError):
    """Another process holds the audit file's lock; ``pid`` is the one it wrote (None: unknown)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        super().__init__(errno.EWOULDBLOCK, "in use by another process", str(path))
        self.pid = pid


def lock_path(path: Path) -> Path:
    """The lock file of the audit file ``path``: hidden, beside it, never rotated."""
    return path.with_name(f".{path.name}.lock")


def take_lock(path: Path) -> int:
    """Lock ``path``'s lock file for this process and write our pid in it; the open descriptor.

    Raises ``LogInUse`` naming the holder's pid when another writer has it.
    """
    fd = os.open(lock_path(path), _LOCK_FLAGS, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).strip()
        os.close(fd)
        raise LogInUse(path, int(holder) if holder.isdigit() else None) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # a full disk: the lock holds without the pid, and the log will say it is full
    return fd


class AuditFile:
    """One open audit file. Not locked: ``AuditLog`` serialises every call."""

    def __init__(self, path: Path, *, max_bytes: int, keep: int) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._keep = keep
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = take_lock(path)
        try:
            self._fd = self._open()
        except BaseException:
            os.close(self._lock)
            raise
        self._size = os.fstat(self._fd).st_size
        self._torn = False  # a failed write left bytes past _size that could not be cut yet
        self._closed = False

    def _open(self) -> int:
        fd = os.open(self.path, _FLAGS, 0o600)
        os.fchmod(fd, 0o600)
        return fd

    def tail(self) -> Tail:
        """The last line as it is on disk now (read once, at start-up)."""
        return read_tail(self._fd)

    def write(self, data: bytes) -> None:
        """Append ``data`` with one ``write()`` (a short write is finished, never interleaved).

        A write that fails part-way (a full disk) is cut off again, so the file ends with the
        last whole line and the next record is never glued to a torn one; if even the cut fails,
        it is retried before the next append.
        """
        if self._closed:
            raise OSError(errno.EBADF, "the audit file is closed")
        if self._fd < 0:
            self._fd = self._open()  # a rotation whose reopen failed
        if self._torn:
            os.ftruncate(self._fd, self._size)
            self._torn = False
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            if len(view) != len(data):
                self._cut()
            raise
        self._size += len(data)

    def _cut(self) -> None:
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            self._torn = True

    @property
    def full(self) -> bool:
        """True once the file has reached ``max_bytes``; the next record goes to a fresh file."""
        return self._size >= self._max_bytes

    def rotate(self) -> None:
        """Shift ``path.N`` up by one, rename ``path`` to ``path.1`` and open a new ``path``."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for index in range(self._keep - 1, 0, -1):
            older = self._numbered(index)
            if older.exists():
                os.replace(older, self._numbered(index + 1))
        os.replace(self.path, self._numbered(1))
        self._size = 0
        self._torn = False
        self._fd = self._open()

    def _numbered(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def close(self) -> None:
        """Close the file, then release the lock (the lock file stays: unlinking it would let
        two servers lock two different files of one name)."""
        self._closed = True
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1
