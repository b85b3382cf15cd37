"""Process hardening applied before any secret can be in memory.

Core dumps off, the process marked non-dumpable (other processes of the same user can then neither
ptrace it nor read /proc/<pid>/mem), and a umask that keeps every file we create private.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import resource
import sys
import threading
from collections.abc import Callable, Iterator

_PR_SET_DUMPABLE = 4
_MAX_HELD_LINE = 64 * 1024


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


@functools.cache
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


@contextlib.contextmanager
def scrubbed_output(scrub: Callable[[str], str]) -> Iterator[None]:
    """While active, everything written to fd 1 or fd 2 reaches stderr line by line, scrubbed.

    A module starting up may print a credential it was just given (``print``, ``sys.stderr``,
    a raw ``os.write``): both descriptors point into a pipe whose reader passes each line through
    ``scrub`` before writing it to the real stderr. stdout, which carries MCP only, gets nothing.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    read_end, write_end = os.pipe()
    relay = threading.Thread(
        target=_relay_scrubbed,
        args=(read_end, saved_err, scrub),
        name="scrubbed-output",
        daemon=True,  # a descendant holding the pipe open must not keep this process alive
    )
    relay.start()
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        # A child that inherited the pipe would keep it open: the relay is not waited for then.
        relay.join(timeout=2)
        os.close(saved_out)
        if not relay.is_alive():
            os.close(saved_err)


def _relay_scrubbed(read_end: int, target: int, scrub: Callable[[str], str]) -> None:
    """Copy lines from ``read_end`` to ``target`` through ``scrub`` until end of file."""
    held = b""
    try:
        while chunk := os.read(read_end, 65536):
            *lines, held = (held + chunk).split(b"\n")
            if len(held) > _MAX_HELD_LINE:  # a line without an end is cut, not held forever
                lines, held = [*lines, held], b""
            for line in lines:
                _write_scrubbed(target, line + b"\n", scrub)
        if held:
            _write_scrubbed(target, held, scrub)
    finally:
        os.close(read_end)


def _write_scrubbed(target: int, data: bytes, scrub: Callable[[str], str]) -> None:
    view = memoryview(
        scrub(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
    )
    while view:
        view = view[os.write(target, view) :]
