"""Process hardening applied before any secret can be in memory.

Core dumps off, the process marked non-dumpable (other processes of the same user can then neither
ptrace it nor read /proc/<pid>/mem), and a umask that keeps every file we create private.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import resource
import sys
from collections.abc import Iterator

_PR_SET_DUMPABLE = 4


def harden_process() -> list[str]:
    """Apply what this platform supports; return the measures that could not be applied."""
    failed: list[str] = []
    os.umask(0o077)
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        failed.append("core dumps")
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
                failed.append("non-dumpable")
        except OSError:
            failed.append("non-dumpable")
    return failed


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """While active, anything written to fd 1 (a stray print in a module) goes to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
