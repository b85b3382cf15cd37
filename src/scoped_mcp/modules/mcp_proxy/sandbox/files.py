"""Credential files: each value in an anonymous memory file (memfd), never on disk.

In the sandbox bubblewrap copies the memfd into a 0400 file on its own tmpfs
(``--ro-bind-data``); without one the child opens it as ``/proc/self/fd/N``. The memfd is
sealed against writes and closed in scoped-mcp once the child has started, so a new child (a
rotation) always gets a new file with the current value.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Mapping

SANDBOX_DIR = "/run/scoped-mcp/files"
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


class MemFiles:
    """The memfds for one child; ``close`` after the child has been spawned."""

    def __init__(self, contents: Mapping[str, str]) -> None:
        self.fds: dict[str, int] = {}
        try:
            for name, text in contents.items():
                self.fds[name] = _sealed(name, text.encode())
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"MemFiles({sorted(self.fds)})"

    def path(self, name: str, *, sandboxed: bool) -> str:
        """Where the child finds ``name``."""
        if sandboxed:
            return f"{SANDBOX_DIR}/{name}"
        return f"/proc/self/fd/{self.fds[name]}"

    def close(self) -> None:
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = {}


def _sealed(name: str, data: bytes) -> int:
    fd = os.memfd_create(f"scoped-mcp-{name}", os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        os.fchmod(fd, 0o400)
    except BaseException:
        os.close(fd)
        raise
    return fd
