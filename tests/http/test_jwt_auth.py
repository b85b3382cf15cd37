"""serve.http.auth: jwt: the server as an OAuth resource server for JWTs from a real issuer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.http.issuer import Issuer, running_issuer
from tests.http.support import HttpServer, free_port, serving
from tests.stdio.test_secret_leaks import leaks

pytestmark = pytest.mark.anyio
AGENT_ID = "agent-01"


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running:
        yield running


def jwt_manifest(
    tmp_path: Path, write_manifest: Callable[..., Path], issuer: Issuer, port: int, **jwt_spec: Any
) -> Path:
    """A filesystem agent whose requests need JWTs from ``issuer`` for its resource URL."""
    spec = {"issuer": issuer.url, "audience": resource(port), **jwt_spec}
    return write_manifest(
        {
            "agent_type": "build",
            "modules": {"filesystem": {"mode": "write", "config": {"base_path": str(tmp_path)}}},
            "serve": {"http": {"auth": "jwt", "jwt": spec}},
        }
    )


def resource(port: int) -> str:
    return f"http://127.0.0.1:{port}/mcp"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forged(header: dict[str, Any], claims: dict[str, Any], secret: bytes = b"") -> str:
    """A token made by hand: ``alg: none`` (no signature) or HS256 keyed with ``secret``."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if header["alg"] == "none":
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def post(server: HttpServer, token: str | None) -> Any:
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    with server.http() as http:
        return http.post("/mcp", json=body, headers=headers)


async def test_valid_jwts_list_and_call_tools_keys_found_by_discovery(
    tmp_path: Path, write_manifest: Callable[..., Path], issuer: Issuer
) -> None:
    """RS256 and ES256 tokens from the issuer (JWKS found through its RFC 8414 metadata), for
    this resource and this agent, let an MCP client list and call tools; the token is in no
    audit record or log line."""
    port = free_port()
    manifest = jwt_manifest(tmp_path, write_manifest, issuer, port)
    rsa_token = issuer.token("rsa-1", audience=resource(port), subject=AGENT_ID)
    ec_token = issuer.token("ec-1", audience=resource(port), subject=AGENT_ID)
    address = f"127.0.0.1:{port}"
    with serving(manifest, tmp_path / "home", agent_type="build", address=address) as server:
        async with server.client(token=rsa_token) as client:
            await client.call_tool("filesystem_write_file", {"path": "j.txt", "content": "jwt"})
        async with server.client(token=ec_token) as client:
            names = [tool.name for tool in await client.list_tools()]
            read = await client.call_tool("filesystem_read_file", {"path": "j.txt"})
        assert server.stop() == 0
    assert "filesystem_read_file" in names
    assert read.data == "jwt"
    assert [c["tool"] for c in server.audit_records("tool_call")] == [
        "filesystem_write_file",
        "filesystem_read_file",
    ]
    assert server.audit_records("http_refused") == []
    seen = server.audit_path.read_text() + server.stderr()
    for token in (rsa_token, ec_token):
        assert leaks(token, "audit and ops log", seen) == []


async def test_bad_jwts_are_401_and_another_agents_is_403_each_audited(
    tmp_path: Path, write_manifest: Callable[..., Path], issuer: Issuer
) -> None:
    """Wrong audience, wrong issuer, expired, not yet valid, alg none, HS256 keyed with the
    public key, an unknown kid, no exp: 401 with an empty body and WWW-Authenticate pointing at
    the resource metadata; a valid token naming another agent: 403. Each is audited."""
    port = free_port()
    manifest = jwt_manifest(tmp_path, write_manifest, issuer, port, jwks_url=issuer.jwks_url)
    aud, now = resource(port), int(time.time())
    good = {"iss": issuer.url, "aud": aud, "sub": AGENT_ID, "iat": now, "exp": now + 300}
    public_pem = (
        issuer.keys["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    cases = {
        "wrong audience": issuer.token(
            "rsa-1", audience="http://127.0.0.1:9/mcp", subject=AGENT_ID
        ),
        "wrong issuer": issuer.token("rsa-1", audience=aud, subject=AGENT_ID, iss="http://x.test"),
        "expired": issuer.token(
            "rsa-1", audience=aud, subject=AGENT_ID, iat=now - 900, exp=now - 600
        ),
        "not yet valid": issuer.token("ec-1", audience=aud, subject=AGENT_ID, nbf=now + 600),
        "algorithm not allowed": forged({"alg": "none", "kid": "rsa-1"}, good),
        "algorithm not allowed (HS256)": forged({"alg": "HS256", "kid": "rsa-1"}, good, public_pem),
        "missing claim": issuer.token("rsa-1", audience=aud, subject=AGENT_ID, exp=None),
    }
    issuer.add_rsa("unpublished")
    unknown = issuer.token("unpublished", audience=aud, subject=AGENT_ID)
    del issuer.keys["unpublished"]
    other_agent = issuer.token("rsa-1", audience=aud, subject="agent-02")
    address = f"127.0.0.1:{port}"
    with serving(manifest, tmp_path / "home", agent_type="build", address=address) as server:
        refused = {name: post(server, token) for name, token in cases.items()}
        refused["unknown key"] = post(server, unknown)
        forbidden = post(server, other_agent)
        assert server.stop() == 0
    metadata = f'Bearer resource_metadata="http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp"'
    for name, response in refused.items():
        assert (name, response.status_code, response.content) == (name, 401, b"")
        assert response.headers["www-authenticate"] == metadata
    assert (forbidden.status_code, forbidden.content) == (403, b"")
    reasons = [(r["status"], r["reason"]) for r in server.audit_records("http_refused")]
    assert reasons == [
        (401, "invalid jwt: wrong audience"),
        (401, "invalid jwt: wrong issuer"),
        (401, "invalid jwt: expired"),
        (401, "invalid jwt: not yet valid"),
        (401, "invalid jwt: algorithm not allowed"),
        (401, "invalid jwt: algorithm not allowed"),
        (401, "invalid jwt: missing claim"),
        (401, "invalid jwt: unknown key"),
        (403, "agent mismatch"),
    ]
    assert server.audit_records("tool_call") == []


async def test_protected_resource_metadata_and_401_without_a_token(
    tmp_path: Path, write_manifest: Callable[..., Path], issuer: Issuer
) -> None:
    """The RFC 9728 document is served without a token at both well-known paths, naming this
    resource and the issuer; /mcp without a token is 401 pointing at it."""
    port = free_port()
    manifest = jwt_manifest(tmp_path, write_manifest, issuer, port)
    address = f"127.0.0.1:{port}"
    with serving(manifest, tmp_path / "home", agent_type="build", address=address) as server:
        with server.http() as http:
            documents = [
                http.get("/.well-known/oauth-protected-resource"),
                http.get("/.well-known/oauth-protected-resource/mcp"),
            ]
        missing = post(server, None)
    for document in documents:
        assert document.status_code == 200
        assert document.headers["content-type"] == "application/json"
        assert document.json() == {
            "resource": resource(port),
            "authorization_servers": [issuer.url],
            "bearer_methods_supported": ["header"],
        }
    assert missing.status_code == 401
    assert "resource_metadata=" in missing.headers["www-authenticate"]
    assert [r["reason"] for r in server.audit_records("http_refused")] == ["missing token"]


def test_alg_none_and_hs_cannot_be_configured(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """algorithms: [none] or [HS256], or a plain-http issuer off loopback, refuse start-up."""
    from tests.support import base_env, run_cli

    for spec in (
        {
            "issuer": "http://127.0.0.1:9",
            "audience": "http://127.0.0.1:8/mcp",
            "algorithms": ["none"],
        },
        {
            "issuer": "http://127.0.0.1:9",
            "audience": "http://127.0.0.1:8/mcp",
            "algorithms": ["HS256"],
        },
        {"issuer": "http://issuer.example", "audience": "http://127.0.0.1:8/mcp"},
    ):
        manifest = write_manifest(
            {"agent_type": "build", "serve": {"http": {"auth": "jwt", "jwt": spec}}}
        )
        env = base_env(tmp_path / "h", AGENT_ID=AGENT_ID, AGENT_TYPE="build")
        done = run_cli("serve", "--manifest", str(manifest), "--http", "127.0.0.1:9", env=env)
        assert done.returncode == 2, done.stderr
        assert "serve.http.jwt" in done.stderr
