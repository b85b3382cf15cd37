"""The loopback redirect receiver of ``auth login`` (RFC 8252 section 7.3).

It listens on 127.0.0.1 on a port the kernel picks, before the authorization URL is shown, and
accepts exactly one well-formed ``GET /callback?code=...&state=...`` (or ``error=...``). Any
other request gets a 404 and is otherwise ignored; a line longer than 8 KiB is dropped. The page
it answers with says only whether the login worked.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import parse_qs, urlsplit

from mcp.shared.auth import AuthorizationCodeResult

from scoped_mcp.errors import ScopedMCPError

MAX_LINE = 8192
PATH = "/callback"
_PAGE = (
    "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
    "Cache-Control: no-store\r\nContent-Length: {length}\r\n\r\n{body}"
)


class LoginRefused(ScopedMCPError):
    """The authorization server (or the user) refused the login."""


class LoopbackCallback:
    """Receives one authorization response on ``redirect_uri``."""

    def __init__(self, port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._socket.bind(("127.0.0.1", port))
        except OSError:
            self._socket.close()
            raise LoginRefused(
                f"the loopback port {port} for the login's redirect is in use",
                fix="stop what listens there, or change oauth.redirect_port",
            ) from None
        self._socket.listen(8)
        self._socket.setblocking(False)
        self.port: int = self._socket.getsockname()[1]
        self._result: asyncio.Future[AuthorizationCodeResult] | None = None
        self._server: asyncio.Server | None = None

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    async def start(self) -> None:
        self._result = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._handle, sock=self._socket)

    async def wait(self) -> AuthorizationCodeResult:
        """The code and state the browser brought back; ``LoginRefused`` for an error reply."""
        assert self._result is not None
        return await self._result

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        else:
            self._socket.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            status, body = self._answer(line)
            payload = _PAGE.format(status=status, length=len(body.encode()), body=body)
            writer.write(payload.encode())
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def _answer(self, line: bytes) -> tuple[str, str]:
        parts = line.decode("latin-1").split()
        if len(line) > MAX_LINE or len(parts) != 3 or parts[0] != "GET":
            return "400 Bad Request", "bad request\n"
        target = urlsplit(parts[1])
        if target.path != PATH or self._result is None or self._result.done():
            return "404 Not Found", "not found\n"
        query = {k: v[0] for k, v in parse_qs(target.query).items()}
        if "error" in query:
            error = "".join(c for c in query["error"][:64] if c.isalnum() or c in "_-")
            self._result.set_exception(
                LoginRefused(f"the authorization server refused the login ({error or 'error'})")
            )
            return "200 OK", "scoped-mcp: the login was refused. You can close this window.\n"
        if not query.get("code") or not query.get("state"):
            return "400 Bad Request", "missing code or state\n"
        self._result.set_result(
            AuthorizationCodeResult(code=query["code"], state=query["state"], iss=query.get("iss"))
        )
        return "200 OK", "scoped-mcp: logged in. You can close this window.\n"
