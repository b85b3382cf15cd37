"""The shared rate limiter's Redis URL held in OpenBao: read by the broker, never shown."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.services.redis_server import redis_server
from tests.stdio.test_secret_leaks import leaks
from tests.vault.conftest import Bao
from tests.vault.test_vault_stdio import approle_env, vault_manifest

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]


async def test_a_vault_reference_serves_the_shared_limiters_url(
    bao: Bao, write_manifest: Callable[..., Path], serve: Callable[..., Any], tmp_path: Path
) -> None:
    """shared: vault:...#RATE_REDIS_URL: the broker reads the URL from KV (one audited fetch of
    RATE_LIMIT_REDIS_URL from vault), the limit holds in Redis, and the password is nowhere."""
    password = "vaultrl" + secrets.token_urlsafe(18)
    workdir = tmp_path / "redis"
    workdir.mkdir()
    with redis_server(workdir, password=password) as redis:
        bao.put_kv2("scoped-mcp/research", API_TOKEN="limits-api-token", RATE_REDIS_URL=redis.url)
        data = vault_manifest(bao)
        data["rate_limits"] = {
            "shared": "vault:secret/scoped-mcp/{agent_type}#RATE_REDIS_URL",
            "modules": {"vaulted": "2/hour"},
        }
        async with serve(write_manifest(data), env=approle_env(bao)) as server:
            first = await server.call("vaulted_token_digest")
            second = await server.call("vaulted_token_digest")
            refused = await server.error("vaulted_token_digest")
            records = server.audit_records()
            stderr = server.stderr()
            audit = server.audit_path.read_text()
        direct = redis.client()
        try:
            keys = direct.keys("*")
        finally:
            direct.close()
    assert first == second
    assert "rate limited: 2 calls per hour for module vaulted" in refused
    assert keys == ["scoped-mcp:rl:{research}:module:vaulted"]
    fetched = [
        r
        for r in records
        if r.get("event") == "credential" and "RATE_LIMIT_REDIS_URL" in (r.get("key") or [])
    ]
    assert [(r["action"], r["backend"]) for r in fetched] == [("fetched", "vault")]
    text = "\n".join([refused, stderr, audit])
    assert leaks(password, "output", text) == []
    assert leaks(redis.url, "output", text) == []
