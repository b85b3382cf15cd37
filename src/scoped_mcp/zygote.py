"""The fork server's wire protocol and its launcher: hand this start to a running zygote.

``scoped-mcp --manifest M`` calls ``launch`` before anything heavy is imported. If a zygote of
exactly this installation answers on ``$XDG_RUNTIME_DIR/scoped-mcp/zygote.sock``, the launcher
passes it fds 0/1/2 (SCM_RIGHTS), argv, environment, working directory and umask, relays
SIGTERM/SIGINT/SIGHUP, and ends as the child ended. Otherwise ``launch`` returns ``None`` after one
ops-log line saying why, and the caller starts in-process as it always did.

One connection per agent, newline-delimited JSON both ways::

    launcher -> zygote   {"hello": FINGERPRINT}
    zygote -> launcher   {"zygote": FINGERPRINT}      (then the zygote forks, or closes on mismatch)
    launcher -> child    one byte carrying fds 0, 1, 2, then {"argv", "environ", "cwd", "umask"}
    launcher -> child    {"signal": N} per relayed signal; end of file means the launcher is gone
    zygote -> launcher   {"exit": CODE} or {"signal": N} once the child has ended

The zygote reads only the hello: the environment (which may hold credentials) is read by the
forked child alone, so the zygote never has it in memory.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scoped_mcp import __version__

ENV_SWITCH = "SCOPED_MCP_ZYGOTE"
SOCKET_NAME = "zygote.sock"
RELAYED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
HELLO_TIMEOUT = 5.0
EXIT_FAILURE = 1
_MAX_LINE = 1 << 20


class ZygoteUnavailable(Exception):
    """Why this start cannot go through a zygote; the text goes to the ops log."""


class _NoZygote(ZygoteUnavailable):
    """No zygote is set up at all (no runtime directory or no socket): a silent in-process start."""


def runtime_dir(environ: Mapping[str, str]) -> Path:
    """The private directory that holds the zygote's socket."""
    base = environ.get("XDG_RUNTIME_DIR")
    if not base:
        raise _NoZygote("XDG_RUNTIME_DIR is not set")
    return Path(base) / "scoped-mcp"


def check_private_dir(path: Path) -> None:
    """Refuse a socket directory that is a link, not ours, or open to group or others."""
    try:
        info = path.lstat()
    except FileNotFoundError as exc:
        raise ZygoteUnavailable(f"{path} does not exist") from exc
    if not path.is_dir() or path.is_symlink():
        raise ZygoteUnavailable(f"{path} is not a directory")
    if info.st_uid != os.geteuid():
        raise ZygoteUnavailable(f"{path} belongs to uid {info.st_uid}, not to us")
    if info.st_mode & 0o077:
        raise ZygoteUnavailable(f"{path} is mode {info.st_mode & 0o777:o}, not private (0700)")


def fingerprint() -> str:
    """This installation: version, interpreter, our source files and the library directory.

    A reinstall, an upgrade of any library or an edit of an editable checkout changes it, so a
    zygote started before that can never run stale code for a new start.
    """
    digest = hashlib.sha256(f"{__version__}\0{sys.executable}\0".encode())
    package = Path(__file__).parent
    for dirpath, dirnames, filenames in os.walk(package):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                info = os.stat(os.path.join(dirpath, name))
                digest.update(f"{dirpath}/{name}\0{info.st_mtime_ns}\0{info.st_size}\0".encode())
    for entry in sys.path:
        if entry.endswith("-packages") and os.path.isdir(entry):
            digest.update(f"{entry}\0{os.stat(entry).st_mtime_ns}\0".encode())
    return f"{__version__}+{digest.hexdigest()[:16]}"


def interpreter_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The PYTHON* variables read only at interpreter start-up (PYTHONPATH is followed instead)."""
    return {
        key: value
        for key, value in environ.items()
        if key.startswith("PYTHON") and key != "PYTHONPATH"
    }


def ops_line(message: str, **fields: Any) -> None:
    """One ops-log line on stderr, shaped like ``opslog.JsonFormatter``'s lines.

    Logging is not configured yet when the launcher decides, and must not be: the in-process
    start configures it as it always did.
    """
    record = {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": "info",
        "logger": __name__,
        "message": message,
        **fields,
    }
    try:
        sys.stderr.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def read_line(sock: socket.socket, buffer: bytearray) -> dict[str, Any] | None:
    """The next JSON line from ``sock`` (``buffer`` keeps what was read past it); None at EOF."""
    while b"\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer.extend(chunk)
        if len(buffer) > _MAX_LINE:
            raise ValueError("line too long")
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    message: dict[str, Any] = json.loads(line)
    return message


def send_line(sock: socket.socket, message: Mapping[str, Any]) -> None:
    """Write one JSON line; never raises SIGPIPE."""
    data = json.dumps(message).encode() + b"\n"
    while data:
        sent = sock.send(data, socket.MSG_NOSIGNAL)
        data = data[sent:]


def launch(argv: Sequence[str], environ: Mapping[str, str]) -> int | None:
    """Run this start in a zygote's child and return its exit code, or None to start here."""
    if environ.get(ENV_SWITCH, "").lower() in ("off", "0", "false", "no"):
        ops_line("starting in-process", reason=f"{ENV_SWITCH}=off")
        return None
    if not sys.platform.startswith("linux"):
        ops_line("starting in-process", reason="the zygote needs Linux (SO_PEERCRED)")
        return None
    try:
        conn = _connect(environ)
    except _NoZygote:
        # The default without a zygote is exactly the start it always was: nothing to say.
        return None
    except (ZygoteUnavailable, OSError, ValueError) as exc:
        reason = str(exc) if isinstance(exc, ZygoteUnavailable) else f"zygote: {exc}"
        ops_line("starting in-process", reason=reason)
        return None
    with conn:
        try:
            _send_start(conn, argv, environ)
        except OSError as exc:
            # Nothing has run yet: a child that got no start ends when this connection closes.
            ops_line("starting in-process", reason=f"zygote: {exc}")
            return None
        # From here on the child may be serving: never start a second server here.
        return _wait(conn)


def _connect(environ: Mapping[str, str]) -> socket.socket:
    """A connection to a zygote of this exact installation, hello exchanged."""
    directory = runtime_dir(environ)
    if not os.path.lexists(directory):
        raise _NoZygote(f"{directory} does not exist")
    check_private_dir(directory)
    path = directory / SOCKET_NAME
    if not path.exists():
        raise _NoZygote("no zygote running (start one with `scoped-mcp zygote`)")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(HELLO_TIMEOUT)
        conn.connect(str(path))
        ours = fingerprint()
        send_line(conn, {"hello": ours})
        reply = read_line(conn, bytearray()) or {}
        theirs = reply.get("zygote")
        if theirs != ours:
            raise ZygoteUnavailable(
                f"the zygote runs another installation ({theirs}, this is {ours}); "
                "restart it: `systemctl --user restart scoped-mcp-zygote` or rerun "
                "`scoped-mcp zygote`"
            )
        if reply.get("interpreter") != interpreter_env(environ):
            # PYTHONHASHSEED, -X options and the like act once, when an interpreter starts.
            raise ZygoteUnavailable(
                "the zygote's interpreter was started with other PYTHON* settings"
            )
        conn.settimeout(None)
    except BaseException:
        conn.close()
        raise
    return conn


def _send_start(conn: socket.socket, argv: Sequence[str], environ: Mapping[str, str]) -> None:
    """Pass stdio, argv, environment, cwd and umask to the child."""
    payload = {
        "argv": list(argv),
        "environ": dict(environ),
        "cwd": os.getcwd(),
        "umask": _current_umask(),
    }
    fds = array.array("i", (0, 1, 2))
    conn.sendmsg([b"F"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
    send_line(conn, payload)


def _wait(conn: socket.socket) -> int:
    """Relay signals to the child until it ends; return its exit code (or die by its signal)."""

    def relay(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            send_line(conn, {"signal": signum})

    for signum in RELAYED:
        signal.signal(signum, relay)
    try:
        status = read_line(conn, bytearray())
    except (OSError, ValueError):
        status = None
    if status is None:
        # The zygote went away while the child ran: its exit code is lost with it.
        ops_line("zygote connection ended without the child's exit code")
        return EXIT_FAILURE
    if "signal" in status:
        _die_by(int(status["signal"]))
    return int(status.get("exit", EXIT_FAILURE))


def _die_by(signum: int) -> None:
    """End this process by the signal that ended the child, so the host sees the same status."""
    for relayed in RELAYED:
        signal.signal(relayed, signal.SIG_DFL)
    signal.signal(signum, signal.SIG_DFL)
    sys.stderr.flush()
    os.kill(os.getpid(), signum)
    time.sleep(1)
    os._exit(128 + signum)


def _current_umask() -> int:
    """The umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask
