"""The audit file itself: append-only, 0600, one ``write()`` per record, rotated by size.

Rotation renames ``log`` to ``log.1`` (``log.1`` to ``log.2``, ..., dropping ``log.{keep}``) and
opens a fresh ``log``. The caller links the fresh file's first record to the old file's last line,
so the chain runs across files.
"""

from __future__ import annotations

import os
from pathlib import Path

from scoped_mcp.audit.chain import Tail, read_tail

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_KEEP = 5
_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


class AuditFile:
    """One open audit file. Not locked: ``AuditLog`` serialises every call."""

    def __init__(self, path: Path, *, max_bytes: int, keep: int) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._keep = keep
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        fd = os.open(self.path, _FLAGS, 0o600)
        os.fchmod(fd, 0o600)
        return fd

    def tail(self) -> Tail:
        """The last line as it is on disk now (read once, at start-up)."""
        return read_tail(self._fd)

    def write(self, data: bytes) -> None:
        """Append ``data`` with one ``write()`` (a short write is finished, never interleaved)."""
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self._size += len(data)

    @property
    def full(self) -> bool:
        """True once the file has reached ``max_bytes``; the next record goes to a fresh file."""
        return self._size >= self._max_bytes

    def rotate(self) -> None:
        """Shift ``path.N`` up by one, rename ``path`` to ``path.1`` and open a new ``path``."""
        os.close(self._fd)
        self._fd = -1
        for index in range(self._keep - 1, 0, -1):
            older = self._numbered(index)
            if older.exists():
                os.replace(older, self._numbered(index + 1))
        os.replace(self.path, self._numbered(1))
        self._fd = self._open()
        self._size = 0

    def _numbered(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
