"""Process hardening applied before any secret can be in memory.

Core dumps off, the process marked non-dumpable (other processes of the same user can then neither
ptrace it nor read /proc/<pid>/mem), and a umask that keeps every file we create private.
"""

from __future__ import annotations

import contextlib
import ctypes
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
            if _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
                failed.append("non-dumpable")
        except OSError:
            failed.append("non-dumpable")
    return failed


def _libc() -> ctypes.CDLL:
    """The C library, preferably as the symbols already loaded into this process.

    ``CDLL(None)`` is dlopen(NULL): libc is already mapped, so nothing is searched or loaded.
    ``ctypes.util.find_library`` runs ``ldconfig -p`` in a subprocess (about a millisecond of
    start-up), so it is only the fallback for a platform where the first way finds no ``prctl``.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl  # noqa: B018 - resolve now, so a missing symbol takes the fallback
    except (OSError, AttributeError):
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("c") or "libc.so.6", use_errno=True)
    return libc


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
