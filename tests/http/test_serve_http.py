"""The server over streamable HTTP: a real MCP client, the token, Origin and Host, shutdown."""

from __future__ import annotations

import contextlib
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from tests.http.support import TOKEN, serving

pytestmark = pytest.mark.anyio
ACCEPT = "application/json, text/event-stream"


def filesystem_manifest(tmp_path: Path, write_manifest: Callable[..., Path], **http: Any) -> Path:
    """A write-mode filesystem agent whose HTTP token comes from SCOPED_MCP_HTTP_TOKEN."""
    return write_manifest(
        {
            "agent_type": "build",
            "modules": {"filesystem": {"mode": "write", "config": {"base_path": str(tmp_path)}}},
            "serve": {"http": {"token": "env:SCOPED_MCP_HTTP_TOKEN", **http}},
        }
    )


async def test_mcp_client_lists_and_calls_tools_and_sigterm_stops_cleanly(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """An MCP client with the token lists and calls tools; each call's audit record names the
    client address; SIGTERM stops with exit 0 and a server_stop record."""
    manifest = filesystem_manifest(tmp_path, write_manifest)
    with serving(manifest, tmp_path / "home", agent_type="build") as server:
        async with server.client() as client:
            names = sorted(tool.name for tool in await client.list_tools())
            assert names == [
                "filesystem_delete_file",
                "filesystem_list_dir",
                "filesystem_read_file",
                "filesystem_write_file",
            ]
            await client.call_tool("filesystem_write_file", {"path": "a.txt", "content": "hi"})
            result = await client.call_tool("filesystem_read_file", {"path": "a.txt"})
            assert result.data == "hi"
        assert server.stop() == 0
    calls = server.audit_records("tool_call")
    assert [c["tool"] for c in calls] == ["filesystem_write_file", "filesystem_read_file"]
    assert all(c["client"].startswith("127.0.0.1:") for c in calls)
    assert server.audit_records("server_stop")[-1]["reason"] == "signal SIGTERM"
    assert (tmp_path / "agents" / "agent-01" / "a.txt").read_text() == "hi"
    assert TOKEN not in server.audit_path.read_text() + server.stderr()


async def test_missing_or_wrong_token_is_401_with_no_detail_and_audited(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """No token, a wrong token or another scheme: 401, an empty body, one audit record each
    with the client address; the MCP client with a wrong token cannot connect."""
    manifest = filesystem_manifest(tmp_path, write_manifest)
    with serving(manifest, tmp_path / "home", agent_type="build") as server:
        with server.http() as http:
            missing = http.post("/mcp", json={})
            wrong = http.post("/mcp", json={}, headers={"Authorization": "Bearer nope-nope"})
            basic = http.post("/mcp", json={}, headers={"Authorization": f"Basic {TOKEN}"})
        for response in (missing, wrong, basic):
            assert response.status_code == 401
            assert response.content == b""
            assert response.headers["www-authenticate"] == "Bearer"
        with pytest.raises(Exception, match="error response"):
            async with server.client(token="x" * 32) as client:
                await client.list_tools()
    refused = server.audit_records("http_refused")
    reasons = [r["reason"] for r in refused]
    assert reasons[:3] == ["missing token", "wrong token", "wrong token"]
    assert reasons[3:], "the MCP client's attempt is audited too"
    assert set(reasons[3:]) == {"wrong token"}
    assert all(r["status"] == 401 and r["client"].startswith("127.0.0.1:") for r in refused)
    assert "x" * 32 not in server.audit_path.read_text() + server.stderr()


async def test_foreign_origin_is_403_and_foreign_host_421(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """With the right token, a foreign Origin is refused (403) and a foreign Host (421, a
    DNS-rebound name); the server's own origin and a configured one are allowed."""
    manifest = filesystem_manifest(
        tmp_path, write_manifest, allowed_origins=["https://agents.example"]
    )
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept": ACCEPT}
    body = _initialize()
    with serving(manifest, tmp_path / "home", agent_type="build") as server:
        own = f"http://{server.address}"
        with server.http() as http:
            foreign = http.post("/mcp", json=body, headers={**auth, "Origin": "https://evil.test"})
            rebound = http.post("/mcp", json=body, headers={**auth, "Host": "evil.test"})
            same = http.post("/mcp", json=body, headers={**auth, "Origin": own})
            listed = http.post(
                "/mcp", json=body, headers={**auth, "Origin": "https://agents.example"}
            )
    assert (foreign.status_code, foreign.content) == (403, b"")
    assert (rebound.status_code, rebound.content) == (421, b"")
    assert same.status_code == 200
    assert listed.status_code == 200
    reasons = [r["reason"] for r in server.audit_records("http_refused")]
    assert reasons == ["foreign origin", "foreign host"]


async def test_a_burst_of_failures_is_rate_limited(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """After ten failures from one host, on any connections, it gets 429 with Retry-After, even
    with the right token."""
    manifest = filesystem_manifest(tmp_path, write_manifest)
    home = tmp_path / "home"
    with serving(manifest, home, agent_type="build") as server:
        statuses = []
        for _ in range(10):  # a new connection (a new source port) each time
            with server.http() as http:
                wrong = {"Authorization": "Bearer wrong"}
                statuses.append(http.post("/mcp", json={}, headers=wrong).status_code)
        with server.http() as http:
            limited = http.post("/mcp", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert statuses == [401] * 10
    assert limited.status_code == 429
    assert 0 < int(limited.headers["retry-after"]) <= 60
    assert len(server.audit_records("http_refused")) == 10


async def test_healthz_needs_no_token_and_says_only_ready(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """GET /healthz answers 200 'ready' without a token, and nothing more."""
    manifest = filesystem_manifest(tmp_path, write_manifest)
    home = tmp_path / "home"
    with serving(manifest, home, agent_type="build") as server, server.http() as http:
        response = http.get("/healthz")
    assert (response.status_code, response.text) == (200, "ready")
    assert server.audit_records("http_refused") == []


async def test_unix_socket_is_private_and_serves_mcp(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """--http unix:PATH makes a 0600 socket that serves /healthz and MCP with the token, and is
    removed at stop."""
    manifest = filesystem_manifest(tmp_path, write_manifest)
    path = tmp_path / "agent.sock"
    home = tmp_path / "home"
    with serving(manifest, home, agent_type="build", address=f"unix:{path}") as server:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": ACCEPT}
        with server.http() as http:
            assert http.get("/healthz").text == "ready"
            assert http.post("/mcp", json={}).status_code == 401
            init = http.post("/mcp", headers=headers, json=_initialize())
        assert init.status_code == 200
        assert "scoped-mcp" in init.text
        assert server.stop() == 0
    assert not path.exists()
    assert server.audit_records("http_refused")[0]["client"] == "unix"


def _initialize() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, written as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls_serves_https_with_the_token(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """With --tls-cert/--tls-key the server speaks HTTPS: /healthz and an authenticated
    initialize succeed, a request without the token is 401."""
    manifest = filesystem_manifest(tmp_path, write_manifest)
    tls = _self_signed(tmp_path)
    with serving(manifest, tmp_path / "home", agent_type="build", tls=tls) as server:
        with server.http() as http:
            assert http.get("/healthz").text == "ready"
            assert http.post("/mcp", json={}).status_code == 401
            headers = {"Authorization": f"Bearer {TOKEN}", "Accept": ACCEPT}
            init = http.post("/mcp", headers=headers, json=_initialize())
        assert init.status_code == 200
        assert server.stop() == 0


async def test_sigterm_with_a_client_connected_stops_within_seconds(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """SIGTERM while an MCP session (and its event stream) is open: exit 0 within the graceful
    bound, the modules stopped and server_stop written."""
    manifest = filesystem_manifest(tmp_path, write_manifest)
    with serving(manifest, tmp_path / "home", agent_type="build") as server:
        client = server.client()
        await client.__aenter__()
        assert await client.list_tools()
        started = time.monotonic()
        code = await anyio.to_thread.run_sync(server.stop)
        elapsed = time.monotonic() - started
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)
    assert code == 0
    assert elapsed < 15
    assert server.audit_records("server_stop")[-1]["reason"] == "signal SIGTERM"
