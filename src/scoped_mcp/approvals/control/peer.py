"""Who is at the other end of a unix socket (SO_PEERCRED), and whether we serve them."""

from __future__ import annotations

import os
import socket
import struct


def peer_uid(sock: socket.socket) -> int:
    """The uid of the peer process, as the kernel recorded it at connect (pid, uid, gid)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def refusal(sock: socket.socket) -> str | None:
    """Why the peer is not served (another uid, or no credentials to read), or None."""
    try:
        uid = peer_uid(sock)
    except OSError as exc:
        return f"peer credentials unreadable ({exc.strerror or exc})"
    if uid != os.geteuid():
        return f"peer uid {uid} is not the server's uid {os.geteuid()}"
    return None
