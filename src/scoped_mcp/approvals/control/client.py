"""The CLI's side of the control sockets: find this user's servers, ask each, collect answers.

Every socket in the private directory is tried; one that refuses the connection is a server that
has gone (its file is left for the server's own clean-up, never removed by us). Each server's
answer is read with a size limit and a timeout; the peer must be our own uid, as for the server.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoped_mcp.approvals.control import paths, peer, protocol

TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Answer:
    """One server's answer (or why there is none)."""

    path: Path
    reply: dict[str, Any] | None
    error: str | None = None


def sockets(environ: Mapping[str, str]) -> list[Path]:
    """The control sockets of this user's running servers (none if the directory is absent)."""
    directory = paths.socket_dir(environ, create=False) if _exists(environ) else None
    if directory is None:
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith(paths.SUFFIX))


def _exists(environ: Mapping[str, str]) -> bool:
    base = environ.get("XDG_RUNTIME_DIR")
    return bool(base) and (Path(str(base)) / "scoped-mcp" / paths.SUBDIR).exists()


def ask(path: Path, message: dict[str, Any]) -> Answer:
    """Send one request to the server at ``path`` and read its one-line answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        try:
            sock.connect(str(path))
        except OSError as exc:
            return Answer(path, None, f"not running ({exc.strerror or exc})")
        refused = peer.refusal(sock)
        if refused is not None:
            return Answer(path, None, f"refused: {refused}")
        try:
            sock.sendall(protocol.encode(message))
            line = _read_line(sock)
            return Answer(path, protocol.decode(line))
        except (OSError, protocol.ProtocolError) as exc:
            return Answer(path, None, f"no usable answer ({exc})")


def _read_line(sock: socket.socket) -> bytes:
    buffer = bytearray()
    while b"\n" not in buffer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buffer += chunk
        if len(buffer) > protocol.MAX_LINE * 64:
            raise protocol.ProtocolError("answer too long")
    return bytes(buffer.split(b"\n", 1)[0])


def ask_all(environ: Mapping[str, str], message: dict[str, Any]) -> list[Answer]:
    """``ask`` every running server of this user."""
    return [ask(path, message) for path in sockets(environ)]
