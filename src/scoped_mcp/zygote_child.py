"""A zygote's forked child: become the launcher's start, then run exactly the normal start.

Order matters: the child hardens itself (non-dumpable, no core dumps) and drops every file
descriptor of the zygote *before* it reads the launcher's environment, which may carry
credentials. Then it takes over the launcher's stdio, environment, working directory, umask and
argv, gets fresh randomness, and runs ``cli.serve_in_process``. A thread watches the launcher's
connection: a relayed signal is raised here, and end of file (the launcher died, even by
SIGKILL) is a SIGTERM, so the server stops in order and revokes its leases.
"""

from __future__ import annotations

import array
import atexit
import gc
import importlib
import os
import random
import signal
import socket
import sys
import threading
import traceback
from typing import Any, NoReturn

from scoped_mcp import zygote

_MAXFD = 65536


def become(conn: socket.socket) -> NoReturn:
    """Run the launcher's start in this forked process and exit with its code."""
    code = 1
    gc.enable()  # the zygote preloads with the collector off; a child runs as a normal start
    try:
        _leave_zygote(conn.fileno())
        buffer = bytearray()
        fds = _receive_stdio(conn)
        payload = zygote.read_line(conn, buffer)
        if payload is None:
            os._exit(1)
        _take_over(fds, payload)
        threading.Thread(target=_watch, args=(conn, buffer), daemon=True).start()
        from scoped_mcp import cli

        code = cli.serve_in_process(payload["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - a normal start prints any crash and exits 1 too
        traceback.print_exc()
    _exit(code)


def _leave_zygote(keep: int) -> None:
    """Harden, reset the zygote's signal set-up, and close every fd but stdio and ``keep``."""
    from scoped_mcp.hardening import harden_process

    harden_process()
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    os.setsid()
    os.closerange(3, keep)
    os.closerange(keep + 1, _MAXFD)


def _receive_stdio(conn: socket.socket) -> list[int]:
    """The launcher's fds 0, 1 and 2, sent with one byte."""
    fds = array.array("i")
    _data, ancdata, _flags, _addr = conn.recvmsg(1, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        os._exit(1)
    return list(fds)


def _take_over(fds: list[int], payload: dict[str, Any]) -> None:
    """Make this process the launcher's: stdio, environment, cwd, umask, argv, randomness."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    _reopen_stdio()
    zygote_path = os.environ.get("PYTHONPATH", "")
    os.environ.clear()
    os.environ.update(payload["environ"])
    _follow_pythonpath(zygote_path, os.environ.get("PYTHONPATH", ""))
    os.chdir(payload["cwd"])
    os.umask(int(payload["umask"]))
    sys.argv = [sys.argv[0], *payload["argv"]]
    # Python reseeds `random` after fork already; this keeps that true if that ever changes.
    # `secrets`, `os.urandom` and our sealing keys draw from the kernel on every call.
    random.seed()


def _follow_pythonpath(old: str, new: str) -> None:
    """Put the launcher's PYTHONPATH where the interpreter would have put it, instead of ours.

    Python reads PYTHONPATH once, at start-up; a custom module the launcher's environment points
    at must be importable here as in a normal start.
    """
    if old != new:
        for entry in filter(None, old.split(os.pathsep)):
            if entry in sys.path[1:]:
                sys.path.remove(entry)
        sys.path[1:1] = [entry for entry in new.split(os.pathsep) if entry]
    importlib.invalidate_caches()


def _reopen_stdio() -> None:
    """New sys.std* over fds 0-2, buffered as Python would buffer these files at start-up."""
    encoding = sys.stderr.encoding or "utf-8"
    streams = []
    for fd, mode, errors in ((0, "r", "strict"), (1, "w", "strict"), (2, "w", "backslashreplace")):
        line_buffered = fd == 2 or (fd == 1 and os.isatty(1))
        streams.append(
            open(  # noqa: SIM115 - these live as long as the process
                fd,
                mode,
                encoding=encoding,
                errors=errors,
                closefd=False,
                buffering=1 if line_buffered else -1,
            )
        )
    sys.stdin, sys.stdout, sys.stderr = streams


def _watch(conn: socket.socket, buffer: bytearray) -> None:
    """Raise here each signal the launcher relays; SIGTERM when the launcher is gone."""
    while True:
        try:
            message = zygote.read_line(conn, buffer)
        except (OSError, ValueError):
            message = None
        if message is None:
            os.kill(os.getpid(), signal.SIGTERM)
            return
        signum = message.get("signal")
        if isinstance(signum, int) and signum in zygote.RELAYED:
            os.kill(os.getpid(), signum)


def _exit(code: int) -> NoReturn:
    """Exit as the interpreter would (atexit handlers, flushed streams), without the zygote's
    frames unwinding in this process."""
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001, S110 - nothing may stop the exit
        pass
    os._exit(code)
