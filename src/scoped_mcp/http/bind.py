"""Where ``serve --http`` listens, and the listening socket, opened before anything is served.

Loopback (``127.0.0.1:PORT``, ``[::1]:PORT``, ``localhost:PORT``, or a bare ``PORT``) and unix
sockets (``unix:PATH``, created 0600) are the defaults. Any other address exposes the agent's
tools beyond this machine, so it needs ``--allow-remote`` and TLS (``--tls-cert``/``--tls-key``);
without them start-up is refused, saying so.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from scoped_mcp.errors import ConfigError
from scoped_mcp.manifest import HttpServeSpec
from scoped_mcp.net.loopback import is_loopback_host

BACKLOG = 128


@dataclass(frozen=True, slots=True)
class Bind:
    """A validated listening address: a TCP host and port, or a unix socket path."""

    host: str | None = None
    port: int | None = None
    uds: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def __str__(self) -> str:
        if self.uds is not None:
            return f"unix:{self.uds}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{'https' if self.tls_cert else 'http'}://{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        """Whether only this machine can connect (a unix socket or a loopback address)."""
        return self.uds is not None or is_loopback(self.host or "")


@dataclass(frozen=True, slots=True)
class HttpServing:
    """How to serve over HTTP: where (``--http``) and the manifest's ``serve.http`` block."""

    bind: Bind
    spec: HttpServeSpec
    agent_id: str = ""
    """``AGENT_ID``: what a JWT's agent claim must equal (``serve.http.auth: jwt``)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine."""
    return is_loopback_host(host)


def parse_bind(
    text: str,
    *,
    allow_remote: bool = False,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> Bind:
    """``[HOST:]PORT`` or ``unix:PATH`` as a ``Bind``; ``ConfigError`` saying what to change."""
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError(
            "--tls-cert and --tls-key go together", fix="pass both files (PEM), or neither"
        )
    cert = Path(tls_cert) if tls_cert else None
    key = Path(tls_key) if tls_key else None
    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        if not path:
            raise ConfigError("--http unix: needs a path", fix="e.g. --http unix:/run/agent.sock")
        return Bind(uds=Path(path).expanduser().absolute(), tls_cert=cert, tls_key=key)
    host, port = _host_port(text)
    bind = Bind(host=host, port=port, tls_cert=cert, tls_key=key)
    if not bind.loopback:
        _require_remote_safety(bind, allow_remote=allow_remote)
    return bind


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(
            f"--http {text!r}: not [HOST:]PORT or unix:PATH",
            fix="e.g. --http 127.0.0.1:8765, --http 8765 or --http unix:/run/agent.sock",
        )
    return host, int(port_text)


def _require_remote_safety(bind: Bind, *, allow_remote: bool) -> None:
    """A non-loopback address: refused unless the operator asked for it and gave TLS."""
    if not allow_remote:
        raise ConfigError(
            f"--http {bind.host}:{bind.port} is not a loopback address: the agent's tools would "
            "be reachable from other machines",
            fix="bind 127.0.0.1 or a unix: socket, or pass --allow-remote with --tls-cert and "
            "--tls-key",
        )
    if bind.tls_cert is None:
        raise ConfigError(
            f"--http {bind.host}:{bind.port} with --allow-remote needs TLS: the bearer token "
            "would cross the network in clear text",
            fix="pass --tls-cert CERT.pem --tls-key KEY.pem",
        )


def open_socket(bind: Bind) -> socket.socket:
    """The listening socket for ``bind``; a unix socket is 0600 from its creation."""
    if bind.uds is not None:
        return _unix_socket(bind.uds)
    family = socket.AF_INET6 if ":" in (bind.host or "") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind.host, bind.port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {bind}: {exc.strerror or exc}",
            fix="choose a free port, or stop what is listening there",
        ) from None
    sock.setblocking(False)
    return sock


def _unix_socket(path: Path) -> socket.socket:
    if path.is_symlink() or (path.exists() and not path.is_socket()):
        raise ConfigError(
            f"--http unix:{path}: exists and is not a socket",
            fix="choose a path that does not exist (a stale socket is replaced)",
        )
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The umask makes the socket 0600 as bind creates it: no moment where others may connect.
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on unix:{path}: {exc.strerror or exc}",
            fix="choose a path in a directory this user can write",
        ) from None
    finally:
        os.umask(old)
    sock.setblocking(False)
    return sock
