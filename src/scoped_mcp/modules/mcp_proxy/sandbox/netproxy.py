"""The filtering HTTP proxy a sandboxed upstream reaches the network through, on a unix socket.

One request per connection: ``CONNECT host:port`` (HTTPS and any TLS) is tunnelled, an
absolute-URI ``http://`` request is forwarded with ``Connection: close``. The target must be an
allowlist entry (``allowlist``); a name is resolved once and every answer checked, and the
connection goes to the checked address, so a second lookup cannot move it (DNS rebinding).
Every refusal is a 403 to the child, an ops-log line and a count. Request heads, connection
counts and idle time are bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from scoped_mcp.errors import ScopeViolation
from scoped_mcp.modules.mcp_proxy.sandbox.allowlist import Endpoint, listed
from scoped_mcp.net.policy import (
    IPAddress,
    Resolver,
    SystemResolver,
    check_address,
)

_log = logging.getLogger(__name__)
MAX_HEAD = 16 * 1024
HEAD_SECONDS = 10.0
CONNECT_SECONDS = 10.0
IDLE_SECONDS = 300.0
MAX_CONNECTIONS = 64
_HOP = {b"proxy-authorization", b"proxy-connection", b"connection", b"keep-alive"}


class Refused(Exception):
    """A request the proxy will not carry; the message is safe to show and log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class FilterProxy:
    """Serves one sandbox's allowlist on a private unix socket (``path``)."""

    allow: list[Endpoint]
    label: str
    resolver: Resolver = field(default_factory=SystemResolver)
    refused: int = 0
    path: Path | None = None
    _server: asyncio.AbstractServer | None = None
    _dir: str | None = None
    _slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_CONNECTIONS))

    async def start(self) -> Path:
        """Listen on ``<private 0700 dir>/proxy.sock``; returns its path."""
        self._dir = tempfile.mkdtemp(prefix="scoped-mcp-net-")
        path = Path(self._dir) / "proxy.sock"
        self._server = await asyncio.start_unix_server(self._serve, path=str(path), limit=MAX_HEAD)
        os.chmod(path, 0o600)
        self.path = path
        return path

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
        if self._dir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self._dir)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._slots.locked():
            await self._refuse(writer, Refused(503, "too many connections"), target="-")
            return
        async with self._slots:
            target = "-"
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_SECONDS)
                method, host, port, forward = _parse(head)
                target = f"{host}:{port}"
                address = await self._check(host, port)
                upstream = await asyncio.wait_for(
                    asyncio.open_connection(str(address), port), CONNECT_SECONDS
                )
            except Refused as exc:
                await self._refuse(writer, exc, target=target)
                return
            except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, ValueError):
                await self._refuse(writer, Refused(400, "malformed request"), target=target)
                return
            except (TimeoutError, OSError):
                await self._refuse(writer, Refused(502, "could not connect"), target=target)
                return
            up_reader, up_writer = upstream
            if method == b"CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                up_writer.write(forward)
            _log.info("sandbox network connected", extra={"proxy": self.label, "target": target})
            await _splice(reader, writer, up_reader, up_writer)

    async def _check(self, host: str, port: int) -> IPAddress:
        entry = listed(self.allow, host, port)
        if entry is None:
            raise Refused(403, "not in the sandbox's network allowlist")
        if entry.address is not None:
            return entry.address
        try:
            answers = await self.resolver.resolve(entry.host, port)
        except (OSError, UnicodeError):
            raise Refused(502, "the name did not resolve") from None
        if not answers:
            raise Refused(502, "the name did not resolve")
        for answer in answers:
            try:
                check_address(answer, allow_private=False, service="sandbox network")
            except ScopeViolation:
                raise Refused(403, "the name resolves to a non-public address") from None
        return answers[0]

    async def _refuse(self, writer: asyncio.StreamWriter, exc: Refused, *, target: str) -> None:
        self.refused += 1
        _log.warning(
            "sandbox network refused",
            extra={
                "proxy": self.label,
                "target": target[:300],
                "reason": str(exc),
                "refused_total": self.refused,
            },
        )
        body = f"scoped-mcp sandbox: {target[:300]}: {exc}\n".encode()
        writer.write(
            f"HTTP/1.1 {exc.status} Refused\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.drain(), 5)
        writer.close()


def _parse(head: bytes) -> tuple[bytes, str, int, bytes]:
    """Method, target host and port, and (for plain HTTP) the head to send on; or Refused."""
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or len(lines) > 128:
        raise Refused(400, "malformed request")
    method, target, version = parts
    text = target.decode("ascii", "strict")
    if method == b"CONNECT":
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise Refused(400, "CONNECT needs host:port")
        return method, _unbracket(host), int(port), b""
    url = urlsplit(text)
    if url.scheme != "http" or not url.hostname or url.username or url.password:
        raise Refused(400, "only CONNECT and absolute http:// requests are proxied")
    port_number = url.port or 80
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    kept = [line for line in lines[1:] if line.split(b":", 1)[0].strip().lower() not in _HOP]
    forward = b"\r\n".join(
        [method + b" " + path.encode() + b" " + version, *kept, b"Connection: close", b"", b""]
    )
    return method, url.hostname, port_number, forward


def _unbracket(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), IDLE_SECONDS)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError):
            if writer.can_write_eof():
                writer.write_eof()


async def _splice(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    try:
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    finally:
        for stream in (writer, up_writer):
            stream.close()
