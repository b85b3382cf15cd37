"""The Vault backend through the real server over stdio, with a module that uses credentials.

The module's tools return a sha256 of a secret (never the secret), so a test can tell which
value a call saw while the value itself never crosses to the agent.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.contract_support import FIXTURES, RawServer, assert_json_lines, call
from tests.support import base_env, run_cli
from tests.vault.conftest import SHORT_TTL_TYPE, Bao, free_port

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]
VAULTED = {"type": "credential_modules.vaulted:VaultedModule"}


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def vault_manifest(
    bao: Bao,
    agent_type: str = "research",
    *,
    ttl: float = 300,
    keys: dict[str, str] | None = None,
    **vault: Any,
) -> dict[str, Any]:
    """A manifest whose credentials default to the agent type's KV v2 secret, via AppRole."""
    settings: dict[str, Any] = {
        "addr": bao.addr,
        "auth": "approle",
        "role_id_env": "VAULT_ROLE_ID",
        "secret_id_env": "VAULT_SECRET_ID",
        "path": "secret/scoped-mcp/{agent_type}",
        "kv_version": 2,
        "timeout": 1,
    }
    settings.update(vault)
    return {
        "agent_type": agent_type,
        "modules": {"vaulted": VAULTED},
        "credentials": {"source": "vault", "ttl": ttl, "vault": settings, "keys": keys or {}},
    }


def approle_env(bao: Bao, agent_type: str = "research", **extra: str) -> dict[str, str]:
    return {
        "PYTHONPATH": str(FIXTURES),
        "VAULT_ROLE_ID": bao.role_id(agent_type),
        "VAULT_SECRET_ID": bao.secret_id(agent_type, wrap=True),
        **extra,
    }


def token_events(records: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") == "credential" and r.get("action") == action]


async def test_kv2_approle_calls_see_the_secret_only_as_a_digest(
    bao: Bao, write_manifest: Callable[..., Path], serve: Callable[..., Any]
) -> None:
    """A tool gets the KV value (its hash matches) and the value is nowhere in output or audit."""
    value = "stdio-kv2-" + "a1b2c3d4e5f6"
    bao.put_kv2("scoped-mcp/research", API_TOKEN=value, OTHER_TOKEN="other-" + value)
    manifest = write_manifest(vault_manifest(bao))
    async with serve(manifest, env=approle_env(bao)) as server:
        assert await server.call("vaulted_token_digest") == digest(value)
        assert await server.call("vaulted_seed_digest", {"key": "OTHER_TOKEN"}) == digest(
            "other-" + value
        )
        assert await server.call("vaulted_whoami_token_len") == len(value)
        # While the server runs: at exit it revokes the token it logged in for.
        (login,) = token_events(server.audit_records(), "token_login")
        info = bao.lookup_accessor(login["accessor"])
    assert value not in server.stderr()
    assert value not in server.audit_path.read_text()
    assert login["backend"] == "vault"
    assert login["auth"] == "approle"
    assert info is not None
    assert info["meta"]["role_name"] == "scoped-mcp-research"


async def test_ambient_root_vault_token_is_ignored(
    bao: Bao, write_manifest: Callable[..., Path], serve: Callable[..., Any], tmp_path: Path
) -> None:
    """With VAULT_TOKEN=<root> in the server's env, auth: approle uses only the role's token."""
    bao.put_kv2("scoped-mcp/research", API_TOKEN="ambient-check")
    bao.put_kv2("scoped-mcp/ops", API_TOKEN="ops-secret-never-readable")
    env = approle_env(bao, VAULT_TOKEN=bao.root_token)
    manifest = write_manifest(vault_manifest(bao))
    async with serve(manifest, env=env) as server:
        assert await server.call("vaulted_token_digest") == digest("ambient-check")
    (login,) = token_events(server.audit_records(), "token_login")
    root_accessor = bao.admin.auth.token.lookup_self()["data"]["accessor"]
    assert login["accessor"] != root_accessor
    # The same env cannot read what only root could: the preflight refuses it.
    denied = write_manifest(
        vault_manifest(bao, keys={"API_TOKEN": "vault:secret/scoped-mcp/ops#API_TOKEN"}),
        name="denied.yml",
    )
    done = run_cli(
        "--manifest",
        str(denied),
        env=base_env(tmp_path / "cli", AGENT_ID="agent-01", AGENT_TYPE="research", **env),
    )
    assert done.returncode == 2
    assert "API_TOKEN (module vaulted, source vault:secret/scoped-mcp/ops#API_TOKEN): denied" in (
        done.stderr
    )
    assert "ops-secret-never-readable" not in done.stderr + done.stdout


async def test_rotation_in_vault_reaches_the_next_call_after_the_ttl(
    bao: Bao, write_manifest: Callable[..., Path], serve: Callable[..., Any]
) -> None:
    """With credentials.ttl: 1, a value changed in Vault is seen by the next call after 1 s."""
    bao.put_kv2("scoped-mcp/research", API_TOKEN="before-rotation")
    manifest = write_manifest(vault_manifest(bao, ttl=1))
    async with serve(manifest, env=approle_env(bao)) as server:
        assert await server.call("vaulted_token_digest") == digest("before-rotation")
        bao.put_kv2("scoped-mcp/research", API_TOKEN="after-rotation")
        await anyio.sleep(1.1)
        assert await server.call("vaulted_token_digest") == digest("after-rotation")


async def test_paused_vault_fails_only_uncached_keys_and_recovers(
    private_bao: Bao, write_manifest: Callable[..., Path], serve: Callable[..., Any]
) -> None:
    """Vault paused mid-session: cached keys work, others fail saying Vault timed out, then all
    recover."""
    bao = private_bao
    bao.put_kv2("scoped-mcp/research", API_TOKEN="cached-value")
    bao.put_kv2("scoped-mcp/shared", other="shared-value")
    keys = {"OTHER_TOKEN": "vault:secret/scoped-mcp/shared#other"}
    manifest = write_manifest(vault_manifest(bao, keys=keys))
    async with serve(manifest, env=approle_env(bao)) as server:
        assert await server.call("vaulted_token_digest") == digest("cached-value")
        bao.pause()
        try:
            assert await server.call("vaulted_token_digest") == digest("cached-value")
            error = await server.error("vaulted_token_digest", {"key": "OTHER_TOKEN"})
        finally:
            bao.resume()
        assert f"OTHER_TOKEN unavailable: vault at {bao.addr} did not answer within " in error
        assert "(timed out)" in error
        assert await server.call("vaulted_token_digest", {"key": "OTHER_TOKEN"}) == digest(
            "shared-value"
        )
    assert "shared-value" not in server.stderr()


async def test_vault_restarted_mid_session_recovers_without_restarting_scoped_mcp(
    private_bao: Bao, write_manifest: Callable[..., Path], serve: Callable[..., Any]
) -> None:
    """After Vault is stopped and started again (same root token), calls work again."""
    bao = private_bao
    bao.put_kv2("scoped-mcp/research", API_TOKEN="first-life")
    manifest = write_manifest(vault_manifest(bao, ttl=1, auth="token", token_env="OPERATOR_TOKEN"))
    env = {"PYTHONPATH": str(FIXTURES), "OPERATOR_TOKEN": bao.root_token}
    async with serve(manifest, env=env) as server:
        assert await server.call("vaulted_token_digest") == digest("first-life")
        bao.stop()
        await anyio.sleep(1.1)
        error = await server.error("vaulted_token_digest")
        assert f"API_TOKEN unavailable: vault unreachable at {bao.addr}" in error
        bao.start()
        bao.put_kv2("scoped-mcp/research", API_TOKEN="second-life")
        assert await server.call("vaulted_token_digest") == digest("second-life")
    # An operator's token is the operator's: never revoked by scoped-mcp.
    assert bao.admin.auth.token.lookup_self()["data"]["accessor"]
    assert not token_events(server.audit_records(), "token_revoked")


def test_token_renewal_relogin_past_max_ttl_and_revoke_at_exit(
    bao: Bao, write_manifest: Callable[..., Path], tmp_path: Path
) -> None:
    """Tokens (ttl 2s, max 4s) are renewed and re-acquired while serving; all dead at exit."""
    bao.put_kv2(f"scoped-mcp/{SHORT_TTL_TYPE}", API_TOKEN="short-ttl-value")
    manifest = write_manifest(vault_manifest(bao, SHORT_TTL_TYPE, ttl=0.5))
    home = tmp_path / "raw"
    home.mkdir()
    env = base_env(
        home, AGENT_ID="agent-01", AGENT_TYPE=SHORT_TTL_TYPE, **approle_env(bao, SHORT_TTL_TYPE)
    )
    server = RawServer.start(["--manifest", str(manifest)], env=env, cwd=home)
    try:
        server.handshake()
        deadline = time.monotonic() + 5.5
        request_id = 2
        while time.monotonic() < deadline:
            reply = server.ask(call(request_id, "vaulted_token_digest"))
            assert reply["result"]["structuredContent"]["result"] == digest("short-ttl-value")
            request_id += 1
            time.sleep(0.3)
        assert server.close() == 0
    finally:
        server.kill()
    records = assert_json_lines((home / "state/scoped-mcp/audit/agent-01.jsonl").read_text())
    logins = token_events(records, "token_login")
    assert len(logins) >= 2, [r.get("action") for r in records]
    assert token_events(records, "token_renewed")
    for login in logins:
        assert bao.lookup_accessor(login["accessor"]) is None
    assert "short-ttl-value" not in server.stderr() + "".join(server.stdout_lines)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing_field", "missing: the KV secret secret/scoped-mcp/research has no field"),
        ("denied", "denied: the broker's token"),
        ("unreachable", "unreachable: vault unreachable at http://127.0.0.1:"),
    ],
)
def test_preflight_failures_exit_2_naming_key_module_source_and_fix(
    bao: Bao, write_manifest: Callable[..., Path], tmp_path: Path, case: str, expected: str
) -> None:
    """Start-up stops with exit 2 and one message per broken key; no secret value appears."""
    bao.put_kv2("scoped-mcp/research", API_TOKEN="preflight-secret-value")
    bao.put_kv2("scoped-mcp/ops", API_TOKEN="preflight-ops-value")
    source = {
        "missing_field": "vault:secret/scoped-mcp/research#NOPE",
        "denied": "vault:secret/scoped-mcp/ops#API_TOKEN",
        "unreachable": "vault:secret/scoped-mcp/research#API_TOKEN",
    }[case]
    addr = f"http://127.0.0.1:{free_port()}" if case == "unreachable" else bao.addr
    manifest = write_manifest(vault_manifest(bao, keys={"API_TOKEN": source}, addr=addr))
    env = base_env(
        tmp_path / "home", AGENT_ID="agent-01", AGENT_TYPE="research", **approle_env(bao)
    )
    done = run_cli("--manifest", str(manifest), env=env)
    assert done.returncode == 2, done.stderr
    assert f"API_TOKEN (module vaulted, source {source}): {expected}" in done.stderr
    assert "fix: " in done.stderr
    for value in ("preflight-secret-value", "preflight-ops-value", env["VAULT_SECRET_ID"]):
        assert value not in done.stderr + done.stdout


def test_sigterm_revokes_the_approle_token(
    bao: Bao, write_manifest: Callable[..., Path], tmp_path: Path
) -> None:
    """Stopping the server with SIGTERM revokes its AppRole token before the process exits."""
    bao.put_kv2("scoped-mcp/research", API_TOKEN="sigterm-value")
    manifest = write_manifest(vault_manifest(bao))
    home = tmp_path / "raw"
    home.mkdir()
    env = base_env(home, AGENT_ID="agent-01", AGENT_TYPE="research", **approle_env(bao))
    server = RawServer.start(["--manifest", str(manifest)], env=env, cwd=home)
    try:
        server.handshake()
        assert not server.ask(call(2, "vaulted_token_digest"))["result"]["isError"]
        server.process.terminate()
        assert server.process.wait(timeout=10) == 0
    finally:
        server.kill()
    records = assert_json_lines((home / "state/scoped-mcp/audit/agent-01.jsonl").read_text())
    (login,) = token_events(records, "token_login")
    assert token_events(records, "token_revoked")
    assert bao.lookup_accessor(login["accessor"]) is None
