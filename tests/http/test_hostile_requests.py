"""Hostile requests over HTTP: slow or idle connections, huge headers and bodies, many sessions."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from scoped_mcp.http.deadline import HEADER_SECONDS
from tests.http.support import TOKEN, HttpServer, serving
from tests.http.test_serve_http import ACCEPT, _initialize, filesystem_manifest

# The server closes a request whose headers are late (HEADER_SECONDS); this allows a loaded machine.
CLOSED_WITHIN = 45.0


def _closed_after(server: HttpServer, first: bytes, trickle: bytes | None) -> float | None:
    """Seconds until the server closes a connection that sent ``first`` and then ``trickle``
    every second (never completing its headers); None if still open after CLOSED_WITHIN."""
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.settimeout(1)
        if first:
            sock.sendall(first)
        started = time.monotonic()
        while time.monotonic() - started < CLOSED_WITHIN:
            try:
                if sock.recv(4096) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                if trickle:
                    try:
                        sock.sendall(trickle)
                    except OSError:
                        return time.monotonic() - started
            except OSError:
                return time.monotonic() - started
    return None


def test_slow_and_idle_connections_are_closed(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """A connection trickling header lines (slowloris) and one that sends nothing are both
    closed by the server; it still serves others meanwhile."""
    manifest = filesystem_manifest(tmp_path, write_manifest)
    with serving(manifest, tmp_path / "home", agent_type="build") as server:
        results: dict[str, float | None] = {}

        def probe(name: str, first: bytes, trickle: bytes | None) -> None:
            results[name] = _closed_after(server, first, trickle)

        threads = [
            threading.Thread(
                target=probe,
                args=("slowloris", b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-A: b\r\n"),
            ),
            threading.Thread(target=probe, args=("idle", b"", None)),
        ]
        for thread in threads:
            thread.start()
        time.sleep(1)
        with server.http() as http:
            assert http.get("/healthz").text == "ready"
        for thread in threads:
            thread.join()
    assert results["slowloris"] is not None, "a connection trickling headers stayed open"
    assert results["idle"] is not None, "an idle connection stayed open"


def test_huge_headers_and_bodies_are_refused_before_the_app(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """A 100 kB header is a 4xx from the HTTP layer; a 5 MiB body is 413 with the token and 401
    without it (the body is never read); the server keeps serving."""
    manifest = filesystem_manifest(tmp_path, write_manifest)
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept": ACCEPT}
    body = b'{"x": "' + b"a" * (5 * 1024 * 1024) + b'"}'
    json_type = {"Content-Type": "application/json"}
    with serving(manifest, tmp_path / "home", agent_type="build") as server:
        with server.http() as http:
            big_header = http.post("/mcp", json={}, headers={**auth, "X-Big": "a" * 100_000})
        with server.http() as http:
            big_body = http.post("/mcp", content=body, headers={**auth, **json_type})
        with server.http() as http:
            no_token = http.post("/mcp", content=body, headers=json_type)
        with server.http() as http:
            assert http.post("/mcp", json=_initialize(), headers=auth).status_code == 200
    assert 400 <= big_header.status_code < 500
    assert big_body.status_code == 413
    assert no_token.status_code == 401


def test_sessions_beyond_max_sessions_are_503(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """With max_sessions 2, a third initialize is refused (503) while two sessions are open."""
    manifest = filesystem_manifest(tmp_path, write_manifest, max_sessions=2)
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept": ACCEPT}
    with serving(manifest, tmp_path / "home", agent_type="build") as server:
        statuses: list[Any] = []
        with server.http() as http:
            for _ in range(3):
                response = http.post("/mcp", json=_initialize(), headers=auth)
                statuses.append((response.status_code, "mcp-session-id" in response.headers))
    assert statuses == [(200, True), (200, True), (503, False)]


@pytest.mark.anyio
async def test_an_mcp_session_outlives_the_header_deadline(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """The header deadline does not cut a real session: a client quiet for longer than it
    calls a tool again in the same session."""
    manifest = filesystem_manifest(tmp_path, write_manifest)
    with serving(manifest, tmp_path / "home", agent_type="build") as server:
        async with server.client() as client:
            await client.call_tool("filesystem_write_file", {"path": "q.txt", "content": "quiet"})
            await anyio.sleep(HEADER_SECONDS + 2)
            result = await client.call_tool("filesystem_read_file", {"path": "q.txt"})
    assert result.data == "quiet"
    assert len(server.audit_records("tool_call")) == 2


def test_a_malformed_host_header_is_421_and_audited(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """Host headers that are not even parseable ('[', 'x]') get the short 421 refusal and an
    audit record, like any foreign host, not a server error."""
    manifest = filesystem_manifest(tmp_path, write_manifest)
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept": ACCEPT}
    with serving(manifest, tmp_path / "home", agent_type="build") as server, server.http() as http:
        answers = [
            http.post("/mcp", json=_initialize(), headers={**auth, "Host": host})
            for host in ("[", "x]", "[::1")
        ]
    assert [(a.status_code, a.content) for a in answers] == [(421, b"")] * 3
    reasons = [r["reason"] for r in server.audit_records("http_refused")]
    assert reasons == ["foreign host"] * 3
    assert "Traceback" not in server.stderr()
