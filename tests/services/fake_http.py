"""A recording HTTP server on 127.0.0.1 in a thread, answering through a route function."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The decoded path, without the query."""
        return unquote(urlsplit(self.target).path)

    @property
    def raw_path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return {k.lower(): v for k, v in self.headers.items()}.get(name.lower())


@dataclass
class Reply:
    """What to answer: a status, a body (bytes, str or JSON-able) and headers."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stream_bytes: int = 0

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


Route = Callable[[Recorded], Reply]


class FakeHTTP:
    """A running server: ``url`` to point a module at, ``requests`` it has received."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(self.command, self.path, dict(self.headers.items()), body)
                with server._lock:
                    server.requests.append(recorded)
                server._answer(self, server.route(recorded))

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        body, content_type = reply.encoded()
        try:
            handler.send_response(reply.status)
            headers = {"Content-Type": content_type, **reply.headers}
            for name, value in headers.items():
                handler.send_header(name, value)
            if reply.stream_bytes:
                handler.send_header("Connection", "close")
                handler.end_headers()
                chunk = b"x" * 65536
                for _ in range(reply.stream_bytes // len(chunk)):
                    handler.wfile.write(chunk)
                return
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            pass  # the client hung up, as it should for an oversized answer

    def start(self) -> FakeHTTP:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@contextmanager
def serve_http(route: Route) -> Iterator[FakeHTTP]:
    """Run a FakeHTTP for the length of the block."""
    server = FakeHTTP(route).start()
    try:
        yield server
    finally:
        server.stop()
