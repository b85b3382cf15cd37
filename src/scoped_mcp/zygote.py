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

Every agent start runs this module, and its launcher process then waits as long as the agent
runs: so it imports only what the interpreter has built in (``_socket``, ``_signal``, ``_json``,
``_blake2``; not ``socket``, ``signal``, ``json``, ``hashlib``, ``pathlib`` or ``typing``, whose
imports would add about 4 MiB of private memory to every waiting launcher).
"""

from __future__ import annotations

import _socket
import os
import sys

from scoped_mcp import __version__, zygote_waiter

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Mapping, Sequence
    from typing import Any
else:
    import _signal  # what the signal module wraps in enums (an import of enum, re and more)

ENV_SWITCH = "SCOPED_MCP_ZYGOTE"
SOCKET_NAME = "zygote.sock"
RELAYED = zygote_waiter.RELAYED
HELLO_TIMEOUT = 5.0
_MAX_LINE = 1 << 20

# FastMCP reads these when it is first imported. We own stdout and stderr: no banner, no update
# check, no rich console output, no .env file from whatever directory the agent host chose, and
# no error details to the client. Set before a start is handed over, so a child gets them too.
FASTMCP_ENV = {
    "FASTMCP_SHOW_SERVER_BANNER": "false",
    "FASTMCP_CHECK_FOR_UPDATES": "off",
    "FASTMCP_ENABLE_RICH_LOGGING": "false",
    "FASTMCP_ENABLE_RICH_TRACEBACKS": "false",
    "FASTMCP_LOG_ENABLED": "false",
    "FASTMCP_ENV_FILE": os.devnull,
    "FASTMCP_MASK_ERROR_DETAILS": "true",
    "FASTMCP_DEPRECATION_WARNINGS": "false",
}


class ZygoteUnavailable(Exception):
    """Why this start cannot go through a zygote; the text goes to the ops log."""


class _NoZygote(ZygoteUnavailable):
    """No zygote is set up at all (no runtime directory or no socket): a silent in-process start."""


def runtime_dir(environ: Mapping[str, str]) -> str:
    """The private directory that holds the zygote's socket."""
    base = environ.get("XDG_RUNTIME_DIR")
    if not base:
        raise _NoZygote("XDG_RUNTIME_DIR is not set")
    return os.path.join(base, "scoped-mcp")


def check_private_dir(path: str | os.PathLike[str]) -> None:
    """Refuse a socket directory that is a link, not ours, or open to group or others."""
    try:
        info = os.lstat(path)
    except FileNotFoundError as exc:
        raise ZygoteUnavailable(f"{os.fspath(path)} does not exist") from exc
    if not os.path.isdir(path) or os.path.islink(path):
        raise ZygoteUnavailable(f"{os.fspath(path)} is not a directory")
    if info.st_uid != os.geteuid():
        raise ZygoteUnavailable(f"{os.fspath(path)} belongs to uid {info.st_uid}, not to us")
    if info.st_mode & 0o077:
        raise ZygoteUnavailable(
            f"{os.fspath(path)} is mode {info.st_mode & 0o777:o}, not private (0700)"
        )


def _hasher() -> Any:
    try:
        from _blake2 import blake2b  # built in: hashlib would load OpenSSL into every launcher
    except ImportError:  # pragma: no cover - an interpreter built without it
        from hashlib import blake2b
    return blake2b(digest_size=8)


def fingerprint() -> str:
    """This installation: version, interpreter, our source files and the library directory.

    A reinstall, an upgrade of any library or an edit of an editable checkout changes it, so a
    zygote started before that can never run stale code for a new start.
    """
    digest = _hasher()
    digest.update(f"{__version__}\0{sys.executable}\0".encode())
    package = os.path.dirname(os.path.abspath(__file__))
    for dirpath, dirnames, filenames in os.walk(package):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                info = os.stat(os.path.join(dirpath, name))
                digest.update(f"{dirpath}/{name}\0{info.st_mtime_ns}\0{info.st_size}\0".encode())
    for entry in sys.path:
        if entry.endswith("-packages") and os.path.isdir(entry):
            digest.update(f"{entry}\0{os.stat(entry).st_mtime_ns}\0".encode())
    return f"{__version__}+{digest.hexdigest()}"


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
    start configures it as it always did. (Only a fallback writes one: its imports cost nothing
    then, as the in-process start imports far more.)
    """
    import json
    from datetime import UTC, datetime

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


# -- the wire: JSON lines, written and read with the interpreter's own C codec ---------------


def encode(value: object) -> str:
    """JSON text of ``value`` (dicts with text keys, lists, text, ints, booleans, None), ASCII
    only, as ``json.dumps`` would write it."""
    from _json import encode_basestring_ascii as quote

    if isinstance(value, str):
        return str(quote(value))
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{quote(str(k))}: {encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(encode(item) for item in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__}")


class _ScanContext:
    """What ``_json.make_scanner`` reads off a decoder: plain JSON, nothing hooked."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        raise ValueError(f"{name} is not JSON")


def decode(text: str) -> Any:
    """The JSON value ``text`` holds; ``ValueError`` if it is not exactly one."""
    from _json import make_scanner

    text = text.strip()
    try:
        context: Any = _ScanContext()
        value, end = make_scanner(context)(text, 0)
    except StopIteration as exc:
        raise ValueError("not JSON") from exc
    if end != len(text):
        raise ValueError("extra data after the JSON value")
    return value


def read_line(sock: _socket.socket, buffer: bytearray) -> dict[str, Any] | None:
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
    message = decode(line.decode())
    if not isinstance(message, dict):
        raise ValueError("a line is not a JSON object")
    return message


def send_line(sock: _socket.socket, message: Mapping[str, Any]) -> None:
    """Write one JSON line; never raises SIGPIPE."""
    data = (encode(dict(message)) + "\n").encode()
    while data:
        sent = sock.send(data, _socket.MSG_NOSIGNAL)
        data = data[sent:]


# -- the launcher ------------------------------------------------------------------------------


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
    try:
        try:
            _send_start(conn, argv, environ)
        except OSError as exc:
            # Nothing has run yet: a child that got no start ends when this connection closes.
            ops_line("starting in-process", reason=f"zygote: {exc}")
            return None
        # From here on the child may be serving: never start a second server here.
        _become_waiter(conn, argv)  # returns only if no bare interpreter could be started
        return zygote_waiter.wait(conn)
    finally:
        conn.close()


def _connect(environ: Mapping[str, str]) -> _socket.socket:
    """A connection to a zygote of this exact installation, hello exchanged."""
    directory = runtime_dir(environ)
    if not os.path.lexists(directory):
        raise _NoZygote(f"{directory} does not exist")
    check_private_dir(directory)
    path = os.path.join(directory, SOCKET_NAME)
    if not os.path.exists(path):
        raise _NoZygote("no zygote running (start one with `scoped-mcp zygote`)")
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.settimeout(HELLO_TIMEOUT)
        conn.connect(path)
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


def _send_start(conn: _socket.socket, argv: Sequence[str], environ: Mapping[str, str]) -> None:
    """Pass stdio, argv, environment, cwd and umask to the child."""
    payload = {
        "argv": list(argv),
        "environ": dict(environ),
        "cwd": os.getcwd(),
        "umask": _current_umask(),
    }
    fds = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in (0, 1, 2))
    conn.sendmsg([b"F"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
    send_line(conn, payload)


def _become_waiter(conn: _socket.socket, argv: Sequence[str]) -> None:
    """Replace this process by ``zygote_waiter`` in a bare interpreter; return (and wait here)
    if that cannot be done.

    The bare interpreter (``-I -S``: no site, no environment) holds about 1.4 MiB less private
    memory than this process, which ran the console script (``import re``), this module and the
    fingerprint, and it waits exactly as it would here. The relayed signals are blocked across
    the exec and unblocked once the waiter's handlers are in place, so none is lost. ``ps``
    shows ``python -I -S .../zygote_waiter.py FD scoped-mcp ARGV...``, with no environment.
    """
    waiter = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zygote_waiter.py")
    if not sys.executable or not os.path.isfile(waiter):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    _signal.pthread_sigmask(_signal.SIG_BLOCK, RELAYED)
    try:
        os.set_inheritable(conn.fileno(), True)
        # "scoped-mcp --manifest M" stays in the command line, for ps and pgrep -f
        shown = ["scoped-mcp", *argv]
        # An empty environment: the agent's (which may carry credentials) stays with the child.
        command = [sys.executable, "-I", "-S", waiter, str(conn.fileno()), *shown]
        os.execve(sys.executable, command, {})  # noqa: S606 - our own interpreter and file, no shell
    except OSError:
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, RELAYED)


def _current_umask() -> int:
    """The umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask
