"""The shared HTTP client asks for uncompressed answers and refuses compressed ones (no bombs)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from scoped_mcp.errors import BackendError
from scoped_mcp.net.client import HttpConfig, make_client, request, retry_after

pytestmark = pytest.mark.anyio
BOMB = gzip.compress(b"\0" * (8 * 1024 * 1024))
seen_encodings: list[str | None] = []


class Bomb(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        seen_encodings.append(self.headers.get("Accept-Encoding"))
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(BOMB)))
        self.end_headers()
        self.wfile.write(BOMB)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def bomb_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Bomb)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_gzip_bomb_is_refused_without_inflating(bomb_url: str) -> None:
    """A gzip answer is refused by name; the client asked for identity encoding."""
    config = HttpConfig(max_response_bytes=64 * 1024)
    async with make_client(httpx.Auth(), config) as client:
        with pytest.raises(BackendError, match="compressed response"):
            await request(client, "GET", httpx.URL(bomb_url + "/x"), config, service="test")
    assert seen_encodings[-1] == "identity"


def test_retry_after_accepts_seconds_and_http_dates_only() -> None:
    """Retry-After is read as delta-seconds or an HTTP-date (capped at a day); anything else is
    ignored rather than repeated."""
    now = 1_700_000_000.0
    date = "Tue, 14 Nov 2023 22:13:40 GMT"  # now + 20 s
    assert retry_after("17") == 17
    assert retry_after(date, now=now) == 20
    assert retry_after("99999999") == 86_400
    assert retry_after("Bearer tk_secret") is None
    assert retry_after("-5") is None
    assert retry_after(None) is None
