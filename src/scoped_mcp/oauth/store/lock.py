"""An exclusive ``flock`` on a lock file, waited for up to ``LOCK_SECONDS``."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from scoped_mcp.errors import BackendUnavailable

LOCK_SECONDS = 30.0


@contextlib.contextmanager
def held(path: Path, *, what: str) -> Iterator[None]:
    """Hold ``path``'s lock (created 0600, its directory 0700) for the block."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + LOCK_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BackendUnavailable(
                        f"{what} stayed locked for {LOCK_SECONDS:g}s"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock
