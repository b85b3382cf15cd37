"""`scoped-mcp creds check` against a real OpenBao dev server, run as a subprocess.

Every test checks the exit code, the status text and the fix, and that no secret value (the KV
value, the broker's token, the AppRole role-id and secret-id) appears in stdout, stderr or JSON.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.commands.vault_support import (
    TOKEN_ENV,
    assert_nowhere,
    creds_check,
    creds_json,
    write_manifest,
)
from tests.vault.conftest import Bao, bao, free_port, private_bao

__all__ = ["bao", "private_bao"]  # the OpenBao fixtures, shared with tests/vault


@pytest.fixture
def value(bao: Bao) -> str:
    """A fresh API_TOKEN in the research agents' KV v2 secret."""
    fresh = secrets.token_hex(16)
    bao.put_kv2("scoped-mcp/research", API_TOKEN=fresh)
    return fresh


def token_for(bao: Bao, *policies: str, **settings: Any) -> str:
    """An operator token with these policies (and the default one)."""
    answer = bao.admin.auth.token.create(policies=list(policies), **settings)
    return str(answer["auth"]["client_token"])


def test_all_good_shows_the_vault_backend_line_and_exits_0(
    bao: Bao, value: str, tmp_path: Path
) -> None:
    """A token that may read the key: exit 0, the backend line (version, token ttl, policies)."""
    token = token_for(bao, "scoped-mcp-research", ttl="2h")
    code, out, err = creds_check(tmp_path, write_manifest(tmp_path, bao.addr), **{TOKEN_ENV: token})
    assert code == 0, out + err
    backend = next(line for line in out.splitlines() if line.startswith("backend vault:"))
    assert f"backend vault: ok  {bao.addr} (no TLS), version 2." in backend
    assert re.search(r"unsealed, active; auth token: token ttl (1h59m|2h00m), ", backend)
    assert "renewable, policies default, scoped-mcp-research" in backend
    assert "leak    API_TOKEN  vault:secret/scoped-mcp/research#API_TOKEN  ok" in out
    assert out.rstrip().endswith("1 key (1 ok), 0 required unusable, 0 warnings: exit 0 (all good)")
    assert_nowhere(out + err, value, token, bao.root_token)


def test_json_schema_has_exactly_the_documented_keys(bao: Bao, value: str, tmp_path: Path) -> None:
    """--json (schema_version 1) has exactly the fields docs/troubleshooting.md lists."""
    token = token_for(bao, "scoped-mcp-research", ttl="2h")
    manifest = write_manifest(tmp_path, bao.addr)
    code, report, raw = creds_json(tmp_path, manifest, **{TOKEN_ENV: token})
    assert code == 0, raw
    assert set(report) == {
        "schema_version", "manifest", "agent_id", "agent_type", "exit_code", "summary",
        "warnings", "keys", "backends", "deep",
    }  # fmt: skip
    assert report["schema_version"] == 1
    assert report["summary"] == {"ok": 1}
    assert report["deep"] == []
    (key,) = report["keys"]
    assert set(key) == {
        "module", "key", "required", "source", "backend", "status", "detail", "fix", "facts",
    }  # fmt: skip
    assert key["facts"]["capabilities"] == ["read"]
    vault = report["backends"]["vault"]
    assert set(vault) == {"status", "detail", "fix", "facts"}
    assert set(vault["facts"]) == {
        "addr", "scheme", "ca_cert", "initialized", "sealed", "standby", "version", "auth",
        "token_ttl", "token_renewable", "token_policies", "token_type", "token_explicit_max_ttl",
        "token_num_uses", "token_max_life", "warnings",
    }  # fmt: skip
    assert vault["facts"]["sealed"] is False
    assert_nowhere(raw, value, token, bao.root_token)


def test_missing_field_exits_1_with_the_kv_patch_fix(bao: Bao, value: str, tmp_path: Path) -> None:
    """A key the KV secret lacks: exit 1, status missing, and the bao kv patch that adds it."""
    token = token_for(bao, "scoped-mcp-research", ttl="2h")
    manifest = write_manifest(
        tmp_path, bao.addr, keys={"API_TOKEN": "vault:secret/scoped-mcp/research#NOT_THERE"}
    )
    code, out, err = creds_check(tmp_path, manifest, **{TOKEN_ENV: token})
    assert code == 1, out + err
    assert "  missing  the KV secret secret/scoped-mcp/research has no field 'NOT_THERE'" in out
    assert "fix: bao kv patch -mount=secret scoped-mcp/research NOT_THERE=<value>" in out
    assert "1 key (1 missing), 1 required unusable" in out
    assert_nowhere(out + err, value, token, bao.root_token)


def test_wrong_policy_is_denied_with_the_policy_line(bao: Bao, value: str, tmp_path: Path) -> None:
    """A path the token's policies do not cover: exit 1, denied, the exact policy line to add."""
    bao.put_kv2("scoped-mcp/ops", API_TOKEN="ops-" + value)
    token = token_for(bao, "scoped-mcp-research", ttl="2h")
    manifest = write_manifest(
        tmp_path, bao.addr, keys={"API_TOKEN": "vault:secret/scoped-mcp/ops#API_TOKEN"}
    )
    code, out, err = creds_check(tmp_path, manifest, **{TOKEN_ENV: token})
    assert code == 1, out + err
    assert (
        "  denied  the broker's token (policies default, scoped-mcp-research) may not read" in out
    )
    assert (
        'fix: add to the policy of the broker\'s token: path "secret/data/scoped-mcp/ops" ' in out
    )
    assert '{ capabilities = ["read"] }' in out
    assert_nowhere(out + err, value, "ops-" + value, token, bao.root_token)


def test_unreachable_address_exits_1(tmp_path: Path) -> None:
    """Nothing listens at the address: exit 1, unreachable, and what to start or correct."""
    addr = f"http://127.0.0.1:{free_port()}"
    token = "s." + secrets.token_urlsafe(18)
    code, out, err = creds_check(tmp_path, write_manifest(tmp_path, addr), **{TOKEN_ENV: token})
    assert code == 1, out + err
    assert f"backend vault: unreachable  vault unreachable at {addr}" in out
    assert f"unreachable  vault unreachable at {addr}" in out.split("STATUS", 1)[1]
    assert f"fix: start vault/OpenBao at {addr}, or correct credentials.vault.addr" in out
    assert_nowhere(out + err, token)


def test_sealed_server_exits_1_with_the_unseal_fix(private_bao: Bao, tmp_path: Path) -> None:
    """A sealed server: exit 1, unreachable (sealed), and the unseal command."""
    private_bao.put_kv2("scoped-mcp/research", API_TOKEN=(kv := secrets.token_hex(16)))
    token = token_for(private_bao, "scoped-mcp-research", ttl="2h")
    private_bao.admin.sys.seal()
    manifest = write_manifest(tmp_path, private_bao.addr)
    code, report, raw = creds_json(tmp_path, manifest, **{TOKEN_ENV: token})
    assert code == 1, raw
    vault = report["backends"]["vault"]
    assert (vault["status"], vault["facts"]["sealed"]) == ("unreachable", True)
    assert vault["detail"] == f"vault sealed at {private_bao.addr}"
    assert vault["fix"] == "unseal it: bao operator unseal"
    assert [k["status"] for k in report["keys"]] == ["unreachable"]
    assert_nowhere(raw, kv, token, private_bao.root_token)


def test_wrapped_secret_id_is_looked_up_never_unwrapped(
    bao: Bao, value: str, tmp_path: Path
) -> None:
    """With a wrapped secret-id (with or without --spend-secret-id) the wrapping token still
    unwraps afterwards; the check says it did not log in, the key is unverified, exit 2."""
    role_id, wrapped = bao.role_id("research"), bao.secret_id("research", wrap=True)
    env = {"ROLE_ID": role_id, "SECRET_ID": wrapped}
    manifest = write_manifest(
        tmp_path, bao.addr, auth="approle", role_id_env="ROLE_ID", secret_id_env="SECRET_ID"
    )
    code, out, err = creds_check(tmp_path, manifest, **env)
    assert code == 2, out + err
    assert "auth approle: wrapped secret-id, no login" in out
    assert "warning: vault: AppRole login skipped: the secret-id is response-wrapped" in out
    assert "API_TOKEN  unverified  vault reachable at" in out
    assert "not verified: no AppRole login" in out
    code, report, raw = creds_json(tmp_path, manifest, "--spend-secret-id", **env)
    assert code == 2, raw
    facts = report["backends"]["vault"]["facts"]
    assert facts["secret_id"] == "wrapped"
    assert facts["wrap_creation_path"] == "auth/approle/role/scoped-mcp-research/secret-id"
    unwrapped = bao.admin.sys.unwrap(wrapped)
    assert unwrapped["data"]["secret_id"]
    assert_nowhere(out + err + raw, value, wrapped, role_id, unwrapped["data"]["secret_id"])


def accessors(bao: Bao) -> set[str]:
    """Every live token's accessor."""
    return set(bao.admin.auth.token.list_accessors()["data"]["keys"])


def approle_manifest(tmp_path: Path, addr: str, **settings: Any) -> Path:
    """The one-key manifest with AppRole inputs from $ROLE_ID and $SECRET_ID."""
    return write_manifest(
        tmp_path, addr, auth="approle", role_id_env="ROLE_ID", secret_id_env="SECRET_ID", **settings
    )


def test_plain_secret_id_logs_in_finds_a_key_absent_from_vault_and_revokes_its_token(
    bao: Bao, value: str, tmp_path: Path
) -> None:
    """A plain secret-id is reusable: the check logs in with it by default, so a key Vault lacks
    is missing (exit 1), a present one ok with the token's capabilities (exit 0), and the token
    of each check is revoked before it exits."""
    role_id, secret_id = bao.role_id("research"), bao.secret_id("research")
    env = {"ROLE_ID": role_id, "SECRET_ID": secret_id}
    before = accessors(bao)
    absent = approle_manifest(
        tmp_path, bao.addr, keys={"API_TOKEN": "vault:secret/scoped-mcp/research#NOT_THERE"}
    )
    code, out, err = creds_check(tmp_path, absent, **env)
    assert code == 1, out + err
    assert "  missing  the KV secret secret/scoped-mcp/research has no field 'NOT_THERE'" in out
    code, report, raw = creds_json(tmp_path, approle_manifest(tmp_path, bao.addr), **env)
    assert code == 0, raw
    (key,) = report["keys"]
    assert (key["status"], key["facts"]["capabilities"]) == ("ok", ["read"])
    assert report["backends"]["vault"]["facts"]["token_policies"] == [
        "default",
        "scoped-mcp-research",
    ]
    assert accessors(bao) - before == set()
    assert_nowhere(out + err + raw, value, secret_id, role_id)


def test_spend_secret_id_is_still_accepted_and_changes_nothing(
    bao: Bao, value: str, tmp_path: Path
) -> None:
    """--spend-secret-id, the former opt-in to the login, is accepted: same result, and a note
    that the login is now the default."""
    role_id, secret_id = bao.role_id("research"), bao.secret_id("research")
    env = {"ROLE_ID": role_id, "SECRET_ID": secret_id}
    manifest = approle_manifest(tmp_path, bao.addr)
    code, out, err = creds_check(tmp_path, manifest, "--spend-secret-id", **env)
    assert code == 0, out + err
    assert "leak    API_TOKEN  vault:secret/scoped-mcp/research#API_TOKEN  ok" in out
    assert "--spend-secret-id is the default now and changes nothing" in err
    assert_nowhere(out + err, value, secret_id, role_id)


def test_a_limited_use_secret_id_is_never_spent_and_keys_are_unverified(
    bao: Bao, value: str, tmp_path: Path
) -> None:
    """secret_id_uses: limited: no login, each key unverified (never ok), the summary says what
    was not checked, exit 2; the one-use secret-id still logs in afterwards."""
    role_id = bao.role_id("research")
    answer = bao.admin.adapter.post(
        "/v1/auth/approle/role/scoped-mcp-research/secret-id", json={"num_uses": 1}
    )
    secret_id = str(answer["data"]["secret_id"])
    env = {"ROLE_ID": role_id, "SECRET_ID": secret_id}
    manifest = approle_manifest(tmp_path, bao.addr, secret_id_uses="limited")
    code, out, err = creds_check(tmp_path, manifest, **env)
    assert code == 2, out + err
    assert "leak    API_TOKEN  vault:secret/scoped-mcp/research#API_TOKEN  unverified" in out
    assert "warning: vault: AppRole login skipped: credentials.vault.secret_id_uses is " in out
    assert out.rstrip().endswith(
        "1 key (1 unverified), 0 required unusable, 2 warnings: exit 2 (warnings only); "
        "not checked: 1 key unverified (its existence and the token's capabilities)"
    )
    login = bao.admin.auth.approle.login(role_id=role_id, secret_id=secret_id)
    assert login["auth"]["client_token"]
    assert_nowhere(out + err, value, secret_id, role_id)


def test_short_lived_token_warns_and_exits_2(bao: Bao, value: str, tmp_path: Path) -> None:
    """A token that cannot outlive a working session: every key ok, a warning, exit 2."""
    token = token_for(bao, "scoped-mcp-research", ttl="10m", renewable=False)
    code, out, err = creds_check(tmp_path, write_manifest(tmp_path, bao.addr), **{TOKEN_ENV: token})
    assert code == 2, out + err
    assert re.search(r"token ttl (9m5\ds|10m00s), not renewable", out)  # slow start-up
    assert "warning: vault: the token can live at most " in out
    assert "shorter than a working session (1h00m)" in out
    assert "1 key (1 ok), 0 required unusable, 1 warnings: exit 2 (warnings only)" in out
    assert_nowhere(out + err, value, token, bao.root_token)


def test_an_ambient_vault_client_cert_is_neither_used_nor_fatal(
    bao: Bao, value: str, tmp_path: Path
) -> None:
    """VAULT_CLIENT_CERT/VAULT_CLIENT_KEY in the environment (here naming files that do not exist)
    are ignored: only credentials.vault.client_cert/client_key count, so the check passes."""
    token = token_for(bao, "scoped-mcp-research", ttl="2h")
    env = {
        TOKEN_ENV: token,
        "VAULT_CLIENT_CERT": str(tmp_path / "no-such-cert.pem"),
        "VAULT_CLIENT_KEY": str(tmp_path / "no-such-key.pem"),
    }
    code, out, err = creds_check(tmp_path, write_manifest(tmp_path, bao.addr), **env)
    assert code == 0, out + err
    assert "leak    API_TOKEN  vault:secret/scoped-mcp/research#API_TOKEN  ok" in out
    assert "no-such-cert" not in out + err
    assert_nowhere(out + err, value, token, bao.root_token)


def test_client_cert_files_are_checked_missing_at_load_and_a_shared_key_refused(
    bao: Bao, value: str, tmp_path: Path
) -> None:
    """A client_cert that does not exist is a manifest error naming the field (exit 3); a
    client_key others can read makes every key insecure, with the chmod that fixes it (exit 1)."""
    token = token_for(bao, "scoped-mcp-research", ttl="2h")
    cert, key = tmp_path / "client.pem", tmp_path / "client-key.pem"
    manifest = write_manifest(tmp_path, bao.addr, client_cert=str(cert), client_key=str(key))
    code, out, err = creds_check(tmp_path, manifest, **{TOKEN_ENV: token})
    assert code == 3, out + err
    assert f"client_cert: {cert} is not a file" in err
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o644)
    code, out, err = creds_check(tmp_path, manifest, **{TOKEN_ENV: token})
    assert code == 1, out + err
    assert f"insecure  credentials.vault.client_key: {key}: mode 0644 lets others read it" in out
    assert f"fix: chmod 600 {key}" in out
    assert_nowhere(out + err, value, token, bao.root_token)


def test_a_dynamic_key_not_issued_is_unverified_not_ok(bao: Bao, tmp_path: Path) -> None:
    """A vault-dynamic: path the token may read is unverified without --deep (the capability does
    not prove the role exists; here no engine is even mounted): exit 2, and the summary says so."""
    token = token_for(bao, "scoped-mcp-research", ttl="2h")
    keys = {"API_TOKEN": "vault-dynamic:database/creds/scoped-mcp-research#password"}
    manifest = write_manifest(tmp_path, bao.addr, keys=keys)
    code, out, err = creds_check(tmp_path, manifest, **{TOKEN_ENV: token})
    assert code == 2, out + err
    assert "#password  unverified  the token may read database/creds/scoped-mcp-research" in out
    assert out.rstrip().endswith(
        "exit 2 (warnings only); not checked: 1 key unverified (not read: see the detail)"
    )
    assert_nowhere(out + err, token, bao.root_token)
