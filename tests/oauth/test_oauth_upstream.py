"""An OAuth 2.1 upstream behind mcp_proxy, end to end: login, refresh, rotation, revocation.

The upstream is a real MCP server on streamable HTTP protected by FastMCP's in-memory OAuth
provider (discovery, dynamic registration, PKCE, refresh with rotation). The login is driven by
the test acting as the browser; the proxied tool is called by a real MCP client over stdio.
"""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.oauth.support import login_as_browser, oauth_upstream, proxy_manifest
from tests.stdio.test_secret_leaks import leaks
from tests.support import base_env, run_cli
from tests.vault.test_mcp_proxy_vault import parsed

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]
EXPIRY = 12


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def stored(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def no_leaks(secrets: list[str], **texts: str) -> None:
    found = [
        hit
        for secret in secrets
        for where, text in texts.items()
        for hit in leaks(secret, where, text)
    ]
    assert not found, found


async def test_login_then_refresh_rotation_and_revocation(
    tmp_path: Path, write_manifest: Callable[..., Path], serve: Callable[..., Any]
) -> None:
    """Login stores a grant; the proxied tool works over stdio; the token is refreshed with
    `resource` at two thirds of its life and its rotation stored; a revoked grant gives the fix;
    no token appears in any output."""
    store = tmp_path / "state" / "grant.json"
    with oauth_upstream(tmp_path, expiry=EXPIRY) as upstream:
        manifest = write_manifest(proxy_manifest(upstream, store))
        run = login_as_browser(manifest, tmp_path / "home")
        assert run.code == 0, run.stderr
        assert "logged in" in run.stdout
        assert stat.S_IMODE(store.stat().st_mode) == 0o600
        first = stored(store)
        code_requests = upstream.token_requests("authorization_code")
        assert code_requests
        assert code_requests[0]["resource"] == upstream.url

        outputs: dict[str, str] = {"login": run.stdout + run.stderr}
        async with serve(manifest) as server:
            who = await parsed(server, "remote_whoami", {})
            before = stored(store)  # the first call may already have refreshed (slow start)
            assert who["token_sha256"] == sha(before["access_token"])
            echoed = await server.client.call_tool("remote_echo_token", {})
            outputs["echo"] = json.dumps([c.model_dump() for c in echoed.content])
            # Past two thirds of the token's life the next call refreshes it first.
            due = before["issued_at"] + (before["expires_at"] - before["issued_at"]) * 2 / 3
            await anyio.sleep(max(0.0, due - time.time()) + 0.5)
            again = await parsed(server, "remote_whoami", {})
            after = stored(store)
            assert after["refresh_token"] != before["refresh_token"]  # rotated and stored
            assert after["refresh_token"] != first["refresh_token"]
            assert again["token_sha256"] == sha(after["access_token"])
            refreshes = upstream.token_requests("refresh_token")
            assert refreshes
            assert all(r["resource"] == upstream.url for r in refreshes)
            upstream.revoke_all()
            error = await server.error("remote_whoami")
            outputs["error"] = error
            assert "upstream authorization expired: run `scoped-mcp auth login --manifest" in error
            assert "--module remote`" in error
            audit = server.audit_path.read_text()
        outputs["audit"] = audit
        events = [json.loads(line) for line in audit.splitlines() if line]
        oauth = [e for e in events if e.get("backend") == "oauth"]
        assert any(e["action"] == "rotated" and e["rotated"] for e in oauth)
        assert any(e["action"] == "failed" and e["status"] == "denied" for e in oauth)
        assert all(e["module"] == "remote" for e in oauth)
        outputs["stderr"] = server.stderr()
        assert "[REDACTED]" in outputs["echo"]
        status = run_cli(
            "auth", "status", "--manifest", str(manifest), env=base_env(tmp_path / "home")
        )
        outputs["status"] = status.stdout + status.stderr
        assert "grant stored" in status.stdout
        assert " ok" not in status.stdout
        no_leaks(upstream.minted(), **outputs)


def cli(manifest: Path, home: Path, *args: str) -> tuple[int, str]:
    result = run_cli(*args, "--manifest", str(manifest), env=base_env(home, AGENT_ID="agent-01"))
    return result.returncode, result.stdout + result.stderr


async def test_two_servers_share_one_store_across_rotations(
    tmp_path: Path, write_manifest: Callable[..., Path], serve: Callable[..., Any]
) -> None:
    """Two servers of one agent type sharing a store both keep working across rotations (the one
    whose token the other's refresh revoked gets a 401 and takes the new token from the store),
    no refresh token is spent twice; creds check proves the grant and, once it is revoked, says
    how to fix it; logout revokes at the provider and deletes; nothing prints a token."""
    store = tmp_path / "state" / "grant.json"
    home = tmp_path / "home"
    outputs: dict[str, str] = {}
    with oauth_upstream(tmp_path, expiry=EXPIRY) as upstream:
        manifest = write_manifest(proxy_manifest(upstream, store))
        run = login_as_browser(manifest, home)
        assert run.code == 0, run.stderr
        outputs["login"] = run.stdout + run.stderr
        async with serve(manifest, agent_id="a1") as one, serve(manifest, agent_id="a2") as two:
            for _ in range(2):
                for server in (one, two):
                    who = await parsed(server, "remote_whoami", {})
                    assert who["token_sha256"] == sha(stored(store)["access_token"])
                grant = stored(store)
                due = grant["issued_at"] + (grant["expires_at"] - grant["issued_at"]) * 2 / 3
                await anyio.sleep(max(0.0, due - time.time()) + 0.5)
            for server in (one, two):
                who = await parsed(server, "remote_whoami", {})
                assert who["token_sha256"] == sha(stored(store)["access_token"])
            logs = one.stderr() + two.stderr()
        outputs["servers"] = logs
        assert "oauth refresh refused" not in logs
        assert "oauth access token taken from the store" in logs  # the other one's rotation
        refreshes = upstream.token_requests("refresh_token")
        assert len(refreshes) >= 2
        assert all(r["resource"] == upstream.url for r in refreshes)
        # Every refresh succeeded: each minted a pair, and the stored one is the newest.
        minted = [r for r in upstream.records() if r.get("grant") == "refresh_token"]
        assert len(minted) == len(refreshes)
        assert stored(store)["refresh_token"] == minted[-1]["minted"][1]

        code, text = cli(manifest, home, "creds", "check")
        outputs["check-ok"] = text
        assert code == 0, text
        assert "oauth remote: ok" in text
        upstream.revoke_all()
        code, text = cli(manifest, home, "creds", "check")
        outputs["check-revoked"] = text
        assert code == 1, text
        assert "upstream authorization expired: run `scoped-mcp auth login --manifest" in text

        run = login_as_browser(manifest, home)
        assert run.code == 0, run.stderr
        outputs["login-again"] = run.stdout + run.stderr
        code, text = cli(manifest, home, "auth", "logout")
        outputs["logout"] = text
        assert code == 0, text
        assert "revoked at the provider (refresh_token, access_token)" in text
        assert not store.exists()
        assert len([r for r in upstream.records() if r.get("path") == "/revoke"]) == 2
        code, text = cli(manifest, home, "auth", "status")
        outputs["status"] = text
        assert code == 1
        assert "no grant stored" in text
        no_leaks(upstream.minted(), **outputs)


async def test_a_preregistered_client_logs_in_and_refreshes_with_its_secret(
    tmp_path: Path, write_manifest: Callable[..., Path], serve: Callable[..., Any]
) -> None:
    """With client_id and client_secret given as credentials, login skips registration, the
    store keeps no copy of the secret, and the server's refresh authenticates with the secret
    read through the broker; the secret appears in no output."""
    import httpx

    from tests.modules.test_mcp_proxy import free_port

    store = tmp_path / "state" / "grant.json"
    home = tmp_path / "home"
    port = free_port()
    with oauth_upstream(tmp_path, expiry=EXPIRY) as upstream:
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(
                f"{upstream.base}/register",
                json={
                    "redirect_uris": [f"http://127.0.0.1:{port}/callback"],
                    "token_endpoint_auth_method": "client_secret_post",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "scope": "read",
                },
            )
        registered = answer.json()
        env = {"UP_ID": registered["client_id"], "UP_SECRET": registered["client_secret"]}
        oauth = {
            "client_id": "${cred:UP_ID}",
            "client_secret": "${cred:UP_SECRET}",
            "redirect_port": port,
        }
        manifest = write_manifest(proxy_manifest(upstream, store, **oauth))
        registrations = len([r for r in upstream.records() if r.get("path") == "/register"])
        run = login_as_browser(manifest, home, extra_env=env)
        assert run.code == 0, run.stderr
        assert "client pre-registered" in run.stdout
        assert len([r for r in upstream.records() if r.get("path") == "/register"]) == registrations
        first = stored(store)
        assert first["preregistered"] is True
        assert first["client_secret"] is None
        async with serve(manifest, env=env) as server:
            await parsed(server, "remote_whoami", {})
            now = stored(store)
            due = now["issued_at"] + (now["expires_at"] - now["issued_at"]) * 2 / 3
            await anyio.sleep(max(0.0, due - time.time()) + 0.5)
            who = await parsed(server, "remote_whoami", {})
            after = stored(store)
            audit = server.audit_path.read_text()
        assert after["refresh_token"] != now["refresh_token"]
        assert who["token_sha256"] == sha(after["access_token"])
        no_leaks(
            [*upstream.minted(), registered["client_secret"]],
            login=run.stdout + run.stderr,
            audit=audit,
            stderr=server.stderr(),
        )
        no_leaks([registered["client_secret"]], store=store.read_text())  # no copy kept


def test_a_login_nobody_completes_times_out_and_stores_nothing(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """auth login whose URL is never opened gives up after login_timeout, exit 1, no store."""
    from tests.support import SCOPED_MCP

    store = tmp_path / "state" / "grant.json"
    with oauth_upstream(tmp_path, expiry=EXPIRY) as upstream:
        manifest = write_manifest(proxy_manifest(upstream, store, login_timeout=3))
        env = base_env(tmp_path / "home", AGENT_ID="agent-01")
        done = subprocess.run(
            [SCOPED_MCP, "auth", "login", "--manifest", str(manifest), "--module", "remote"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1
    assert "no answer from the browser within 3s" in done.stderr
    assert "http://127.0.0.1:" in done.stdout  # the URL was printed
    assert not store.exists()
