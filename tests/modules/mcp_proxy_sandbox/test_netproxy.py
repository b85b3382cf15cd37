"""The filtering proxy in process, on its real unix socket, against real loopback servers.

A stateful resolver stands in for DNS (it records every lookup) so names can be made to answer
loopback or mixed addresses, as a rebinding attacker's DNS would.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from scoped_mcp.modules.mcp_proxy.sandbox.allowlist import parse_endpoint
from scoped_mcp.modules.mcp_proxy.sandbox.netproxy import MAX_HEAD, FilterProxy
from scoped_mcp.net.policy import IPAddress
from tests.services.fake_http import Reply, serve_http

pytestmark = pytest.mark.anyio


@dataclass
class ScriptedResolver:
    """Answers each name from a script and records the lookups."""

    answers: dict[str, list[str]]
    lookups: list[str] = field(default_factory=list)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        return [ipaddress.ip_address(a) for a in self.answers.get(host, [])]


@asynccontextmanager
async def proxy(allow: list[str], resolver: ScriptedResolver) -> AsyncIterator[FilterProxy]:
    running = FilterProxy([parse_endpoint(a) for a in allow], "test", resolver=resolver)
    await running.start()
    try:
        yield running
    finally:
        await running.close()


async def exchange(running: FilterProxy, request: bytes) -> bytes:
    assert running.path is not None
    reader, writer = await asyncio.open_unix_connection(str(running.path))
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 20)
    writer.close()
    return answer


async def test_names_answering_non_public_addresses_are_refused() -> None:
    """A listed name that resolves to loopback, or to a public and a loopback address, is
    refused whole; the lookup happens once and nothing is connected."""
    resolver = ScriptedResolver(
        {"rebind.test": ["127.0.0.1"], "mixed.test": ["93.184.215.14", "127.0.0.1"]}
    )
    async with proxy(["rebind.test:80", "mixed.test:443"], resolver) as running:
        plain = await exchange(running, b"GET http://rebind.test/ HTTP/1.1\r\n\r\n")
        tunnel = await exchange(running, b"CONNECT mixed.test:443 HTTP/1.1\r\n\r\n")
    assert plain.startswith(b"HTTP/1.1 403 ")
    assert b"non-public address" in plain
    assert tunnel.startswith(b"HTTP/1.1 403 ")
    assert resolver.lookups == ["rebind.test", "mixed.test"]
    assert running.refused == 2


async def test_unlisted_targets_and_other_forms_are_refused_without_a_lookup() -> None:
    """An unlisted port, an unlisted literal, an origin-form or https:// request, and an
    oversized head are refused before any lookup."""
    resolver = ScriptedResolver({})
    async with proxy(["api.test:443"], resolver) as running:
        answers = [
            await exchange(running, b"CONNECT api.test:22 HTTP/1.1\r\n\r\n"),
            await exchange(running, b"CONNECT 10.0.0.1:443 HTTP/1.1\r\n\r\n"),
            await exchange(running, b"GET /etc/passwd HTTP/1.1\r\n\r\n"),
            await exchange(running, b"GET https://api.test/ HTTP/1.1\r\n\r\n"),
            await exchange(running, b"GET http://api.test/ HTTP/1.1\r\nX: " + b"a" * MAX_HEAD),
        ]
    assert [a.split(b" ", 2)[1] for a in answers] == [b"403", b"403", b"400", b"400", b"400"]
    assert resolver.lookups == []
    assert running.refused == 5


async def test_plain_http_is_forwarded_once_without_proxy_credentials() -> None:
    """A listed literal gets the request in origin form, without Proxy-Authorization, with
    Connection: close; the answer comes back."""
    with serve_http(lambda request: Reply(body="hello")) as service:
        async with proxy([f"127.0.0.1:{service.port}"], ScriptedResolver({})) as running:
            answer = await exchange(
                running,
                f"GET http://127.0.0.1:{service.port}/p?q=1 HTTP/1.1\r\nHost: x\r\n"
                "Proxy-Authorization: Basic c2VjcmV0\r\nConnection: keep-alive\r\n\r\n".encode(),
            )
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"hello")
    (seen,) = service.requests
    assert seen.target == "/p?q=1"
    assert seen.header("Proxy-Authorization") is None
    assert seen.header("Connection") == "close"
    assert running.refused == 0
