"""``scoped-mcp zygote``: the fork server that pays the framework's import once per boot.

It imports FastMCP, the MCP SDK, our serve path and the installed built-in modules' libraries,
freezes that heap (``gc.freeze``, so children share the pages instead of copying them when the
collector touches them), then accepts launchers on a 0600 unix socket in a 0700 directory of
ours. Each accepted launcher of the same uid and installation gets a forked child
(``scoped_mcp.zygote_child``); the zygote itself only reaps children and reports their exit status.
It never reads a manifest, a credential or an agent's environment.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import selectors
import signal
import socket
import struct
import sys
import threading
from pathlib import Path

from scoped_mcp import zygote
from scoped_mcp.errors import ConfigError

EXIT_OK = 0

# FastMCP imports griffe (docstring parsing) on the first tool it registers, and anyio its
# asyncio backend on the first run: both are a large share of a start when not preloaded.
_PRELOAD = (
    "anyio",
    "anyio._backends._asyncio",
    "griffe",
    "fastmcp",
    "mcp.server.stdio",
    "mcp.types",
    "scoped_mcp.server",
    "scoped_mcp.commands.serve",
    "scoped_mcp.opslog",
    "scoped_mcp.credentials.backends.env",
    "scoped_mcp.credentials.backends.file",
    "scoped_mcp.credentials.backends.keyring",
    "scoped_mcp.credentials.backends.vault",
    "scoped_mcp.credentials.backends.bitwarden",
    # imported by every start after the imports above (found by diffing a child's sys.modules)
    "scoped_mcp.credentials.settings",
    "fastmcp.server.transforms.catalog",
    "anyio._core._signals",
    "scoped_mcp.zygote_child",  # what a child runs first
)


def run(environ: dict[str, str] | os._Environ[str]) -> int:
    """Preload, listen, and fork a child per launcher until SIGTERM or SIGINT."""
    inherited = _inherited_listener(environ)
    listener = inherited or _bind(Path(zygote.runtime_dir(environ)))
    gc.disable()  # no collection while preloading: it would leave holes children then fill
    loaded = preload()
    warm()
    gc.freeze()
    gc.enable()  # collects only what is allocated from now on: the frozen heap is left alone
    print(
        f"scoped-mcp zygote {zygote.fingerprint()}: {len(loaded)} modules preloaded, "
        f"listening on {listener.getsockname()}{' (inherited)' if inherited else ''}",
        file=sys.stderr,
        flush=True,
    )
    if threading.active_count() != 1:
        # fork() copies only the calling thread; a preloaded library's thread would be lost.
        print("scoped-mcp zygote: warning: threads run before forking", file=sys.stderr)
    _Server(listener).serve()
    return EXIT_OK


def preload() -> list[str]:
    """Import the framework and every built-in module that is installed (nothing that reads
    configuration); return what was imported. A module whose extra is missing is skipped."""
    from scoped_mcp.modules import BUILTIN

    names = [*_PRELOAD, *(spec.partition(":")[0] for spec in BUILTIN.values())]
    loaded = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        loaded.append(name)
    # Each start looks up the installed secret backends and module packages; read once here
    # (kept only while sys.path and its directories are unchanged, so never stale).
    from scoped_mcp import plugins
    from scoped_mcp.credentials.backends import ENTRY_POINT_GROUP as BACKENDS
    from scoped_mcp.registry import ENTRY_POINT_GROUP as MODULES

    plugins.installed(BACKENDS)
    plugins.installed(MODULES)
    return loaded


def warm() -> None:
    """Run, once, the lazy first-use work of FastMCP and the MCP SDK that every start repeats
    (a tool's registration, and a whole client session over memory streams: initialize,
    tools/list, tools/call), so that what they cache is shared with every child instead of
    built in each (measured per child: about 3 MiB less PSS for the listing, 1.1 MiB less private
    memory for the session). No module, manifest or secret."""
    import asyncio

    from fastmcp import Client, FastMCP

    server: FastMCP[None] = FastMCP("scoped-mcp-zygote-warm-up")

    @server.tool
    def echo(text: str, times: int = 1) -> str:
        """Echo ``text``."""
        return text * times

    async def session() -> None:
        async with Client(server) as client:
            await client.list_tools()
            await client.call_tool("echo", {"text": "warm"})

    asyncio.run(session())
    # What every start then does the same way, done here once: the command line's parser, the
    # log levels (setting one clears every preloaded logger's cache, a write to each) and the C
    # library handle that process hardening resolves.
    from scoped_mcp import cli, hardening, opslog

    cli.command_parser()
    opslog.set_levels()
    hardening._libc()
    _prepare_tools()


def _prepare_tools() -> int:
    """The tool template (schema and validator) of every tool of every installed built-in
    module, under the name it gets when the manifest uses the module's own key: the largest share
    of what a child would otherwise build itself (``scoped_mcp.bound_tool``)."""
    from scoped_mcp import bound_tool
    from scoped_mcp.modules import BUILTIN
    from scoped_mcp.modules._base import ToolModule

    built = 0
    for key, target in BUILTIN.items():
        module_name, _, class_name = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
            if isinstance(cls, type) and issubclass(cls, ToolModule):
                built += bound_tool.prepare({key: cls})
        except Exception:  # noqa: BLE001, S112 - a module that cannot be prepared is built per start
            continue
    return built


def _inherited_listener(environ: dict[str, str] | os._Environ[str]) -> socket.socket | None:
    """The listening socket systemd passed (socket activation, fd 3), if any."""
    if environ.get("LISTEN_PID") != str(os.getpid()) or int(environ.get("LISTEN_FDS", "0")) < 1:
        return None
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(key, None)
    listener = socket.socket(fileno=3)
    if listener.family != socket.AF_UNIX or listener.type != socket.SOCK_STREAM:
        raise ConfigError("the inherited socket is not a unix stream socket")
    listener.setblocking(True)
    return listener


def _bind(directory: Path) -> socket.socket:
    """Listen on ``directory``/zygote.sock (0600), creating the 0700 directory if need be."""
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    try:
        zygote.check_private_dir(directory)
    except zygote.ZygoteUnavailable as exc:
        raise ConfigError(
            f"refusing to listen: {exc}", fix=f"remove {directory} or make it yours with mode 0700"
        ) from exc
    path = directory / zygote.SOCKET_NAME
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with probe:
            if probe.connect_ex(str(path)) == 0:
                raise ConfigError(f"a zygote already listens on {path}", fix="stop it first")
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    listener.listen(64)
    return listener


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end (SO_PEERCRED: pid, uid, gid)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class _Server:
    """The accept loop: hello, fork, and each child's exit status back to its launcher."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.children: dict[int, socket.socket] = {}
        self.fingerprint = zygote.fingerprint()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.stopping = False

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        with selectors.DefaultSelector() as selector:
            selector.register(self.listener, selectors.EVENT_READ)
            selector.register(self.wake_r, selectors.EVENT_READ)
            while not self.stopping:
                for key, _ in selector.select():
                    if key.fileobj is self.listener:
                        self._accept()
                    else:
                        os.read(self.wake_r, 4096)
                        self._reap()
        self.listener.close()

    def _stop(self, _signum: int, _frame: object) -> None:
        # Running agents are their own sessions and outlive the zygote; only new starts stop.
        self.stopping = True

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        try:
            if peer_uid(conn) != os.geteuid():
                conn.close()
                return
            conn.settimeout(zygote.HELLO_TIMEOUT)
            hello = zygote.read_line(conn, bytearray())
            if hello is None:
                conn.close()
                return
            zygote.send_line(
                conn,
                {"zygote": self.fingerprint, "interpreter": zygote.interpreter_env(os.environ)},
            )
            if hello.get("hello") != self.fingerprint:
                conn.close()
                return
            conn.settimeout(None)
        except (OSError, ValueError):
            conn.close()
            return
        self._fork(conn)

    def _fork(self, conn: socket.socket) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            from scoped_mcp import zygote_child

            zygote_child.become(conn)  # never returns
        self.children[pid] = conn

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            if os.WIFSIGNALED(status):
                message = {"signal": os.WTERMSIG(status)}
            else:
                message = {"exit": os.waitstatus_to_exitcode(status)}
            with contextlib.suppress(OSError):
                zygote.send_line(conn, message)
            conn.close()
