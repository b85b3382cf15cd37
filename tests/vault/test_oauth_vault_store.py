"""The vault: grant store against real OpenBao: KV v2 with check-and-set, end to end too."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.identity import AgentContext
from scoped_mcp.oauth.grant import Grant
from scoped_mcp.oauth.store import StoreConflict, open_store
from tests.oauth.support import login_as_browser, oauth_upstream, proxy_manifest
from tests.stdio.test_secret_leaks import leaks
from tests.vault.conftest import Bao
from tests.vault.test_mcp_proxy_vault import parsed

POLICY = """
path "secret/data/scoped-mcp/oauth/*" { capabilities = ["create", "read", "update"] }
path "secret/metadata/scoped-mcp/oauth/*" { capabilities = ["delete"] }
"""


def store_token(bao: Bao) -> str:
    """A token allowed only the OAuth grant paths."""
    bao.admin.sys.create_or_update_policy(name="scoped-mcp-oauth-store", policy=POLICY)
    answer = bao.admin.auth.token.create(policies=["scoped-mcp-oauth-store"], ttl="10m")
    return str(answer["auth"]["client_token"])


def grant(refresh: str) -> Grant:
    return Grant(
        server_url="https://mcp.example.org/mcp",
        resource="https://mcp.example.org/mcp",
        token_endpoint="https://auth.example.org/token",
        client_id="c",
        access_token="at-" + refresh,
        refresh_token=refresh,
    )


def test_check_and_set_refuses_a_lost_race(bao: Bao) -> None:
    """Two stores read one version; the first write wins, the second raises StoreConflict and
    changes nothing; delete removes every version."""
    spec = VaultSpec.model_validate({"addr": bao.addr, "auth": "token", "token_env": "T"})
    env = {"T": store_token(bao)}
    ctx = AgentContext("a1", "research")
    ref = "vault:secret/scoped-mcp/oauth/{agent_type}-race"
    one = open_store(ref, ctx, where="w", vault=spec, environ=env)
    two = open_store(ref, ctx, where="w", vault=spec, environ=env)
    try:
        assert one.read() is None
        one.write(grant("rt-1"))
        assert one.read() is not None
        assert two.read() is not None
        one.write(grant("rt-2"))
        with pytest.raises(StoreConflict):
            two.write(grant("rt-3"))
        stored = two.read()
        assert stored is not None
        assert stored.refresh_token == "rt-2"
        two.write(grant("rt-4"))  # after a fresh read the write goes through
        assert one.delete() is True
        assert two.read() is None
    finally:
        one.close()
        two.close()


@pytest.mark.anyio
async def test_login_and_refresh_through_a_vault_store(
    bao: Bao, tmp_path: Path, write_manifest: Callable[..., Path], serve: Callable[..., Any]
) -> None:
    """auth login stores the grant in Vault; the server refreshes it and writes the rotation
    back with check-and-set; no token appears in any output."""
    token = store_token(bao)
    home = tmp_path / "home"
    with oauth_upstream(tmp_path, expiry=12) as upstream:
        data = proxy_manifest(upstream, tmp_path / "unused.json")
        data["modules"]["remote"]["config"]["oauth"]["store"] = (
            "vault:secret/scoped-mcp/oauth/{agent_type}-remote"
        )
        data["credentials"]["vault"] = {
            "addr": bao.addr,
            "auth": "token",
            "token_env": "VAULT_TOKEN",
        }
        manifest = write_manifest(data)
        (home).mkdir(parents=True, exist_ok=True)
        run = login_as_browser(manifest, home, extra_env={"VAULT_TOKEN": token})
        assert run.code == 0, run.stderr

        def stored() -> dict[str, Any]:
            answer = bao.admin.secrets.kv.v2.read_secret_version(
                path="scoped-mcp/oauth/research-remote",
                mount_point="secret",
                raise_on_deleted_version=True,
            )
            value: dict[str, Any] = json.loads(answer["data"]["data"]["grant"])
            return value

        before = stored()
        assert before["refresh_token"]
        async with serve(manifest, env={"VAULT_TOKEN": token}) as server:
            await parsed(server, "remote_whoami", {})
            first = stored()
            due = first["issued_at"] + (first["expires_at"] - first["issued_at"]) * 2 / 3
            await anyio.sleep(max(0.0, due - time.time()) + 0.5)
            await parsed(server, "remote_whoami", {})
            after = stored()
            audit = server.audit_path.read_text()
        assert after["refresh_token"] != first["refresh_token"]  # rotated, written back
        assert before["client_id"] == after["client_id"]
        assert upstream.token_requests("refresh_token")
        again = login_as_browser(manifest, home, extra_env={"VAULT_TOKEN": token})
        assert again.code == 0, again.stderr  # a new login replaces the stored grant
        assert stored()["refresh_token"] != after["refresh_token"]
        texts = {
            "login": run.stdout + run.stderr + again.stdout + again.stderr,
            "audit": audit,
            "stderr": server.stderr(),
        }
        found = [h for s in upstream.minted() for w, t in texts.items() for h in leaks(s, w, t)]
        assert not found, found
