"""``oauth-client:NAME``: a client-credentials access token as an ordinary key, end to end.

The token endpoint is a minimal real one (``tests/fixtures/oauth_upstream/token_endpoint.py``):
FastMCP's in-memory provider has no client credentials grant. The token reaches a real MCP
upstream through ``mcp_proxy``'s ``headers``, driven by a real MCP client over stdio.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.fixtures.oauth_upstream import SERVER
from tests.modules.test_mcp_proxy import free_port, http_upstream
from tests.stdio.test_secret_leaks import leaks
from tests.support import base_env, run_cli
from tests.vault.test_mcp_proxy_vault import parsed

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]
__all__ = ["http_upstream"]
TOKEN_ENDPOINT = SERVER.with_name("token_endpoint.py")
EXPIRY = 6
CLIENT_ID = "partner-client"


def records(log: Path) -> list[dict[str, Any]]:
    return (
        [json.loads(line) for line in log.read_text().splitlines() if line] if log.exists() else []
    )


@pytest.fixture
def token_endpoint(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """The token endpoint on a loopback port: its URL, its log, the client's secret."""
    secret = "cs_" + secrets.token_urlsafe(24)
    port, log = free_port(), tmp_path / "token-endpoint.jsonl"
    process = subprocess.Popen(
        [
            sys.executable,
            str(TOKEN_ENDPOINT),
            str(port),
            str(log),
            CLIENT_ID,
            secret,
            "--expiry",
            str(EXPIRY),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/token"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline
            assert process.poll() is None
            time.sleep(0.1)
    try:
        yield url, log, secret
    finally:
        process.terminate()
        process.wait(timeout=10)


def manifest_for(url: str, upstream: str) -> dict[str, Any]:
    return {
        "agent_type": "research",
        "credentials": {
            "source": "env",
            "keys": {"PARTNER_TOKEN": "oauth-client:partner"},
            "oauth-client": {
                "partner": {
                    "token_endpoint": url,
                    "client_id": "env:PARTNER_ID",
                    "client_secret": "env:PARTNER_SECRET",
                    "scopes": ["read"],
                    "resource": "https://api.example.test",
                }
            },
        },
        "modules": {
            "partner": {
                "type": "scoped_mcp.modules.mcp_proxy:McpProxyModule",
                "config": {
                    "url": upstream,
                    "headers": {"Authorization": "Bearer ${cred:PARTNER_TOKEN}"},
                    "tools": {"whoami": "read", "fail_with_token": "read"},
                },
            }
        },
    }


async def test_client_credentials_token_is_cached_renewed_and_never_shown(
    tmp_path: Path,
    token_endpoint: tuple[str, Path, str],
    http_upstream: Callable[[], str],
    write_manifest: Callable[..., Path],
    serve: Callable[..., Any],
) -> None:
    """The upstream gets the minted token; calls within its life reuse it (one token request);
    after it nears expiry a new one is fetched, with scope and resource; a wrong secret is
    refused by creds check with a short reason; no token or secret appears anywhere."""
    url, log, secret = token_endpoint
    manifest = write_manifest(manifest_for(url, http_upstream()))
    env = {"PARTNER_ID": CLIENT_ID, "PARTNER_SECRET": secret}
    outputs: dict[str, str] = {}
    async with serve(manifest, env=env) as server:
        first = await parsed(server, "partner_whoami", {})
        # The start-up preflight proved the client with one token, not kept; the call got one.
        minted = [t for r in records(log) for t in r.get("minted", [])]
        second = await parsed(server, "partner_whoami", {})
        assert len([t for r in records(log) for t in r.get("minted", [])]) == len(minted) == 2
        assert (
            first["token_sha256"]
            == second["token_sha256"]
            == hashlib.sha256(minted[-1].encode()).hexdigest()
        )
        outputs["echo"] = await server.error("partner_fail_with_token", {})
        await anyio.sleep(EXPIRY)  # cached for expiry less a tenth: now re-fetched
        third = await parsed(server, "partner_whoami", {})
        minted = [t for r in records(log) for t in r.get("minted", [])]
        assert len(minted) == 3
        assert third["token_sha256"] == hashlib.sha256(minted[-1].encode()).hexdigest()
        outputs["audit"] = server.audit_path.read_text()
    outputs["stderr"] = server.stderr()
    requests = [r for r in records(log) if "grant_type" in r]
    assert all(r["grant_type"] == "client_credentials" for r in requests)
    assert all(
        r["scope"] == "read" and r["resource"] == "https://api.example.test" for r in requests
    )
    assert all(r["authenticated"] for r in requests)
    assert "[REDACTED]" in outputs["echo"]

    check = run_cli(
        "creds", "check", "--manifest", str(manifest), env=base_env(tmp_path / "home", **env)
    )
    outputs["check"] = check.stdout + check.stderr
    assert check.returncode == 0, outputs["check"]
    wrong = run_cli(
        "creds",
        "check",
        "--manifest",
        str(manifest),
        env=base_env(tmp_path / "home", PARTNER_ID=CLIENT_ID, PARTNER_SECRET="nope-nope"),
    )
    outputs["wrong"] = wrong.stdout + wrong.stderr
    assert wrong.returncode == 1
    assert "refused the client (invalid_client)" in wrong.stdout
    minted = [t for r in records(log) for t in r.get("minted", [])]
    found = [h for s in [*minted, secret] for w, t in outputs.items() for h in leaks(s, w, t)]
    assert not found, found


async def test_http_proxy_service_auth_takes_a_client_credentials_token(
    tmp_path: Path, token_endpoint: tuple[str, Path, str]
) -> None:
    """The same key in http_proxy's service auth: the service receives the minted token as
    its bearer header, and the module's result shows neither it nor the client secret."""
    from scoped_mcp.testing.harness import module_harness
    from tests.modules.test_http_proxy import RESOLVER_TABLE, config, lab
    from tests.services.checks import assert_clean
    from tests.services.harness import Built
    from tests.services.netlab import StaticResolver

    url, log, secret = token_endpoint
    data = manifest_for(url, "http://127.0.0.1:1/mcp")
    credentials = {**data["credentials"], "keys": {"API_TOKEN": "oauth-client:partner"}}
    env = {"PARTNER_ID": CLIENT_ID, "PARTNER_SECRET": secret}
    with lab() as the_lab:
        async with module_harness(
            tmp_path,
            "http_proxy",
            config(the_lab.allowed.port),
            env=env,
            manifest={"credentials": credentials},
        ) as harness:
            built = Built(harness)
            built.module.resolver = StaticResolver(dict(RESOLVER_TABLE))
            result = await built.module.get("api", "v1/items")
    minted = [t for r in records(log) for t in r.get("minted", [])]
    (request,) = the_lab.allowed.requests
    assert request.header("authorization") == f"Bearer {minted[-1]}"
    assert result["status"] == 200
    assert_clean(repr(result), [*minted, secret])
