"""A loopback network lab for SSRF tests: recording servers, a test resolver, a connect watch.

* ``LabServer`` is an HTTP server on a chosen loopback address that records every accepted
  connection and every request, answering through a route function.
* ``StaticResolver`` maps test names (``allowed.test``) to addresses, records each lookup, and can
  answer differently on later lookups (DNS rebinding).
* ``watch()`` records, through a Python audit hook, every ``socket.connect`` and
  ``socket.getaddrinfo`` this process makes, so a test can prove that nothing connected to a
  refused address and that no name went to the system resolver.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from scoped_mcp.net.policy import IPAddress
from tests.services.fake_http import Recorded, Reply


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True
    connections: list[tuple[str, int]]

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, peer = super().get_request()
        self.connections.append(peer)
        return sock, peer


class LabServer:
    """An HTTP server on ``host`` (any 127.x address) that records connections and requests."""

    def __init__(
        self,
        route: Callable[[Recorded], Reply],
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ):
        self.route = route
        self.requests: list[Recorded] = []
        self.server_names: list[str | None] = []
        lab = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(self.command, self.path, dict(self.headers.items()), body)
                lab.requests.append(recorded)
                reply = lab.route(recorded)
                data, content_type = reply.encoded()
                self.send_response(reply.status)
                for name, value in {"Content-Type": content_type, **reply.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

        self._httpd = _Recorder((host, port), Handler)
        self._httpd.connections = []
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.host = host
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def connections(self) -> list[tuple[str, int]]:
        return self._httpd.connections

    @property
    def touched(self) -> bool:
        """Whether anything connected at all."""
        return bool(self.connections or self.requests)

    def start(self) -> LabServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@contextmanager
def lab_server(
    route: Callable[[Recorded], Reply],
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ssl.SSLContext | None = None,
) -> Iterator[LabServer]:
    """Run a LabServer for the length of the block (over TLS when ``tls`` is given)."""
    server = LabServer(route, host, port, tls).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class StaticResolver:
    """Answers from a table; ``later`` gives the answers from the second lookup of a name on."""

    table: dict[str, Sequence[str]]
    later: dict[str, Sequence[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        seen = host in self.lookups
        self.lookups.append(host)
        answers = self.later[host] if seen and host in self.later else self.table.get(host)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "unknown test name")
        return [ipaddress.ip_address(a) for a in answers]


@dataclass
class NetWatch:
    """Every connect and getaddrinfo made while the watch is active."""

    connects: list[Any] = field(default_factory=list)
    lookups: list[Any] = field(default_factory=list)

    def connected_hosts(self) -> set[str]:
        return {str(a[0]) for a in self.connects if isinstance(a, tuple)}


_active: list[NetWatch] = []
_installed: list[bool] = []


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _active:
        return
    if event == "socket.connect":
        _active[-1].connects.append(args[1])
    elif event == "socket.getaddrinfo":
        _active[-1].lookups.append(args[0])


@contextmanager
def watch() -> Iterator[NetWatch]:
    """Record this process's socket connects and name lookups for the length of the block."""
    if not _installed:
        sys.addaudithook(_hook)
        _installed.append(True)
    current = NetWatch()
    _active.append(current)
    try:
        yield current
    finally:
        _active.remove(current)
