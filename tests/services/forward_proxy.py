"""A small forward HTTP proxy on 127.0.0.1 that records what it is asked to do.

It handles absolute-URI requests (``GET http://host:port/path``), which it forwards over a fresh
connection, and ``CONNECT host:port`` tunnels, which it relays byte for byte. It connects only to
127.0.0.0/8, so a test that goes wrong cannot reach anything else.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class ForwardProxy:
    """The proxy's address and the request lines it received, in order."""

    port: int
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _loopback(host: str) -> bool:
    if host == "localhost":  # the one name it accepts, for tunnels whose TLS checks the name
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until one side closes."""
    while True:
        ready, _, _ = select.select([a, b], [], [], 5)
        if not ready:
            return
        for sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)


def _handler(record: ForwardProxy) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline(65536).decode("latin-1").rstrip("\r\n")
            head = []
            while (header := self.rfile.readline(65536)) not in (b"\r\n", b"\n", b""):
                head.append(header)
            record.requests.append(line)
            method, target, _ = line.split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                if not _loopback(host):
                    self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                    return
                with socket.create_connection((host, int(port)), timeout=5) as upstream:
                    self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    self.wfile.flush()
                    _relay(self.connection, upstream)
                return
            parts = urlsplit(target)
            if not parts.hostname or not _loopback(parts.hostname):
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            kept = [h for h in head if not h.lower().startswith((b"proxy-", b"connection:"))]
            sizes = [int(h[15:]) for h in head if h.lower().startswith(b"content-length:")]
            length = sizes[0] if sizes else 0
            body = self.rfile.read(length) if length else b""
            with socket.create_connection((parts.hostname, parts.port or 80), timeout=5) as up:
                up.sendall(f"{method} {path} HTTP/1.1\r\n".encode() + b"".join(kept))
                up.sendall(b"Connection: close\r\n\r\n" + body)
                while chunk := up.recv(65536):
                    self.wfile.write(chunk)

    return Handler


@contextmanager
def forward_proxy() -> Iterator[ForwardProxy]:
    """A running forward proxy on 127.0.0.1 (one thread per connection)."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler)
    server.daemon_threads = True
    record = ForwardProxy(server.server_address[1])
    server.RequestHandlerClass = _handler(record)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
