"""The Vault backend through the real server over streamable HTTP: AppRole, and revocation.

The same module and manifest as tests/vault/test_vault_stdio.py, served with ``--http``; the
bearer token itself comes from Vault KV, so the preflight, the guard and the tools all go through
the broker's Vault login.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.http.support import TOKEN, serving
from tests.stdio.test_secret_leaks import leaks
from tests.vault.conftest import Bao
from tests.vault.test_vault_stdio import approle_env, digest, token_events, vault_manifest

pytestmark = pytest.mark.anyio


async def test_sigterm_over_http_revokes_the_approle_token(
    bao: Bao, write_manifest: Callable[..., Path], tmp_path: Path
) -> None:
    """Served over HTTP with an AppRole login (the bearer token read from Vault KV too), a tool
    sees its KV value; SIGTERM exits 0 having revoked the broker's Vault token, as over stdio,
    and no secret (KV values, bearer token, secret-id) reaches the audit log or stderr."""
    value = "http-kv2-" + "f6e5d4c3b2a1"
    bao.put_kv2("scoped-mcp/research", API_TOKEN=value, HTTP_TOKEN=TOKEN)
    manifest_data = vault_manifest(bao)
    manifest_data["serve"] = {"http": {"token": "vault:secret/scoped-mcp/{agent_type}#HTTP_TOKEN"}}
    manifest = write_manifest(manifest_data)
    env = approle_env(bao)
    with serving(manifest, tmp_path / "home", agent_type="research", env=env) as server:
        async with server.client() as client:
            result = await client.call_tool("vaulted_token_digest", {})
        (login,) = token_events(server.audit_records(), "token_login")
        alive = bao.lookup_accessor(login["accessor"])
        assert server.stop() == 0
    assert result.data == digest(value)
    assert alive is not None
    assert alive["meta"]["role_name"] == "scoped-mcp-research"
    assert token_events(server.audit_records(), "token_revoked")
    assert bao.lookup_accessor(login["accessor"]) is None, "revoked at SIGTERM"
    assert server.audit_records("server_stop")[-1]["reason"] == "signal SIGTERM"
    seen = server.audit_path.read_text() + server.stderr()
    for secret in (value, TOKEN, env["VAULT_SECRET_ID"]):
        assert leaks(secret, "audit and ops log", seen) == []
