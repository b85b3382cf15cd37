"""What a launcher does once its start is handed over: wait for the child, relay signals.

The launcher execs this file by path in a bare interpreter (``python -I -S zygote_waiter.py FD
[ARG ...]``, see ``zygote._become_waiter``), so it imports nothing the interpreter has not built
in, not even ``scoped_mcp``; if that exec fails, the launcher calls ``wait`` itself. FD is the
connection to the zygote; the arguments after it (``scoped-mcp --manifest M``) are only there so
that ``ps`` and ``pgrep -f`` still show which agent this is. Each SIGTERM/SIGINT/SIGHUP is sent
on as ``{"signal": N}``; ``{"exit": CODE}`` ends this process with that code, ``{"signal": N}`` by
that signal, and a connection that ends without either with code 1 and one ops-log line.
"""

from __future__ import annotations

import _socket
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
else:
    import _signal

RELAYED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)
EXIT_FAILURE = 1
_MAX_LINE = 4096
_POLL_SECONDS = 0.25


def wait(conn: _socket.socket) -> int:
    """Relay signals to the child until it ends; return its exit code (or die by its signal)."""

    def relay(signum: int, _frame: object) -> None:
        try:  # noqa: SIM105 - contextlib is not built in
            conn.send(b'{"signal": %d}\n' % signum, _socket.MSG_NOSIGNAL)
        except OSError:
            pass

    for signum in RELAYED:
        _signal.signal(signum, relay)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, RELAYED)  # blocked by the launcher across exec
    status = parse_status(_first_line(conn))
    if status is None:
        # The zygote went away while the child ran: its exit code is lost with it.
        _ops_line("zygote connection ended without the child's exit code")
        return EXIT_FAILURE
    kind, number = status
    if kind == "signal":
        _die_by(number)
    return number


def parse_status(line: str) -> tuple[str, int] | None:
    """``("exit", N)`` or ``("signal", N)`` for the line the zygote writes; None otherwise."""
    for kind in ("exit", "signal"):
        prefix = f'{{"{kind}": '
        if line.startswith(prefix) and line.endswith("}"):
            number = line[len(prefix) : -1]
            if number.isdigit():
                return kind, int(number)
    return None


def _first_line(conn: _socket.socket) -> str:
    # A signal that lands just before recv() blocks would wait, unrelayed, until recv returns:
    # Python runs handlers between bytecodes. Waking every _POLL_SECONDS bounds that delay.
    conn.settimeout(_POLL_SECONDS)
    data = b""
    while b"\n" not in data and len(data) < _MAX_LINE:
        try:
            chunk = conn.recv(_MAX_LINE)
        except TimeoutError:
            continue
        except OSError:
            return ""
        if not chunk:
            break
        data += chunk
    return data.partition(b"\n")[0].decode("ascii", "replace").strip()


def _die_by(signum: int) -> None:
    """End this process by the signal that ended the child, so the host sees the same status."""
    for relayed in RELAYED:
        _signal.signal(relayed, _signal.SIG_DFL)
    _signal.signal(signum, _signal.SIG_DFL)
    sys.stderr.flush()
    os.kill(os.getpid(), signum)
    time.sleep(1)
    os._exit(128 + signum)


def _ops_line(message: str) -> None:
    """One ops-log line on stderr, shaped like ``opslog.JsonFormatter``'s (``message`` is ours:
    plain ASCII with no quote or backslash)."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}"
    line = (
        f'{{"timestamp": "{stamp}+00:00", "level": "info", "logger": "scoped_mcp.zygote", '
        f'"message": "{message}"}}\n'
    )
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def main() -> None:
    sys.exit(wait(_socket.socket(fileno=int(sys.argv[1]))))


if __name__ == "__main__":
    main()
