"""`scoped-mcp creds check` of the HTTP bearer token: its status, its strength, never its value."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from scoped_mcp.testing.harness import write_manifest as write_manifest_file
from tests.commands.test_creds_check_vault import approle_manifest, token_for
from tests.commands.vault_support import TOKEN_ENV, creds_check
from tests.commands.vault_support import write_manifest as vault_manifest
from tests.http.token_strength_cases import WEAK
from tests.stdio.test_secret_leaks import leaks
from tests.support import base_env, run_cli
from tests.vault.conftest import Bao, bao

__all__ = ["bao"]  # the OpenBao fixture, shared with tests/vault
REFERENCE = "env:SCOPED_MCP_HTTP_TOKEN"


def filesystem_manifest(tmp_path: Path, token_ref: str = REFERENCE) -> Path:
    """An agent with no module credentials, only the HTTP bearer token."""
    data = {
        "agent_type": "build",
        "modules": {"filesystem": {"mode": "read", "config": {"base_path": str(tmp_path)}}},
        "serve": {"http": {"token": token_ref}},
    }
    return write_manifest_file(tmp_path / "agent.yml", data)


def check_json(tmp_path: Path, manifest: Path, **env: str) -> tuple[int, dict[str, Any], str]:
    environ = base_env(tmp_path / "home", **env)
    text = run_cli("creds", "check", "--http", "--manifest", str(manifest), env=environ)
    plain = run_cli("creds", "check", "--http", "--manifest", str(manifest), "--json", env=environ)
    assert plain.returncode == text.returncode
    return plain.returncode, json.loads(plain.stdout), text.stdout + text.stderr + plain.stdout


def token_row(report: dict[str, Any]) -> dict[str, Any]:
    (row,) = [k for k in report["keys"] if k["module"] == "serve.http"]
    return row


def test_a_strong_token_is_ok_and_never_shown(tmp_path: Path) -> None:
    """A token from secrets.token_urlsafe(32): its row is ok and strong, exit 0, no value."""
    token = secrets.token_urlsafe(32)
    code, report, output = check_json(
        tmp_path, filesystem_manifest(tmp_path), SCOPED_MCP_HTTP_TOKEN=token
    )
    assert code == 0, output
    row = token_row(report)
    assert (row["key"], row["source"], row["status"]) == ("HTTP_TOKEN", REFERENCE, "ok")
    assert row["facts"]["strength"] == "strong"
    assert report["warnings"] == []
    assert "serve.http  HTTP_TOKEN  env:SCOPED_MCP_HTTP_TOKEN  ok" in output
    assert leaks(token, "creds check output", output) == []


@pytest.mark.parametrize("token", WEAK, ids=[f"weak-{i}" for i in range(len(WEAK))])
def test_a_weak_token_is_ok_with_a_warning(tmp_path: Path, token: str) -> None:
    """A token the server accepts but that looks guessable: ok, a warning naming the fix, exit 2."""
    code, report, output = check_json(
        tmp_path, filesystem_manifest(tmp_path), SCOPED_MCP_HTTP_TOKEN=token
    )
    assert code == 2, output
    row = token_row(report)
    assert (row["status"], row["facts"]["strength"]) == ("ok", "weak")
    (warning,) = report["warnings"]
    assert warning.startswith("HTTP_TOKEN: the token looks weak (under 256 bits estimated)")
    assert "secrets.token_urlsafe(32)" in warning
    assert leaks(token, "creds check output", output) == []


def test_a_token_the_server_refuses_is_insecure(tmp_path: Path) -> None:
    """A token shorter than serve --http accepts: insecure, the fix, exit 1."""
    token = "Sh0rt-t0k3n"
    code, report, output = check_json(
        tmp_path, filesystem_manifest(tmp_path), SCOPED_MCP_HTTP_TOKEN=token
    )
    assert code == 1, output
    row = token_row(report)
    assert row["status"] == "insecure"
    assert "serve --http refuses it" in row["detail"]
    assert "secrets.token_urlsafe(32)" in row["fix"]
    assert leaks(token, "creds check output", output) == []


def test_a_missing_token_is_missing_naming_the_export(tmp_path: Path) -> None:
    """The reference resolves to nothing: missing, the export that fixes it, exit 1."""
    code, report, output = check_json(tmp_path, filesystem_manifest(tmp_path))
    assert code == 1, output
    row = token_row(report)
    assert row["status"] == "missing"
    assert row["fix"] == "export SCOPED_MCP_HTTP_TOKEN=..."


def test_no_token_reference_means_no_token_row(tmp_path: Path) -> None:
    """A manifest without serve.http.token (a stdio agent) gets no HTTP_TOKEN row."""
    data = {
        "agent_type": "build",
        "modules": {"filesystem": {"mode": "read", "config": {"base_path": str(tmp_path)}}},
    }
    manifest = write_manifest_file(tmp_path / "agent.yml", data)
    code, report, output = check_json(tmp_path, manifest)
    assert code == 0, output
    assert [k for k in report["keys"] if k["module"] == "serve.http"] == []


def _with_vault_token(manifest: Path) -> Path:
    data = yaml.safe_load(manifest.read_text())
    data["serve"] = {"http": {"token": "vault:secret/scoped-mcp/{agent_type}#HTTP_TOKEN"}}
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    return manifest


def test_a_vault_token_is_read_and_judged(bao: Bao, tmp_path: Path) -> None:
    """From Vault KV: ok only once read (strong here), and neither it nor Vault's token shown."""
    http_token, api = secrets.token_urlsafe(32), secrets.token_hex(16)
    bao.put_kv2("scoped-mcp/research", API_TOKEN=api, HTTP_TOKEN=http_token)
    vault_token = token_for(bao, "scoped-mcp-research", ttl="2h")
    manifest = _with_vault_token(vault_manifest(tmp_path, bao.addr))
    code, out, err = creds_check(tmp_path, manifest, "--http", "--json", **{TOKEN_ENV: vault_token})
    assert code == 0, out + err
    row = token_row(json.loads(out))
    assert (row["status"], row["facts"]["strength"]) == ("ok", "strong")
    for value in (http_token, api, vault_token, bao.root_token):
        assert leaks(value, "creds check output", out + err) == []


def test_a_vault_token_that_cannot_be_read_is_unverified_not_ok(bao: Bao, tmp_path: Path) -> None:
    """No login allowed (secret_id_uses: limited): the token is unverified, its strength not
    judged, exit 2; never ok."""
    http_token = secrets.token_urlsafe(32)
    bao.put_kv2("scoped-mcp/research", API_TOKEN="x" * 20, HTTP_TOKEN=http_token)
    answer = bao.admin.adapter.post(
        "/v1/auth/approle/role/scoped-mcp-research/secret-id", json={"num_uses": 1}
    )
    secret_id = str(answer["data"]["secret_id"])
    env = {"ROLE_ID": bao.role_id("research"), "SECRET_ID": secret_id}
    manifest = _with_vault_token(approle_manifest(tmp_path, bao.addr, secret_id_uses="limited"))
    code, out, err = creds_check(tmp_path, manifest, "--http", "--json", **env)
    assert code == 2, out + err
    report = json.loads(out)
    row = token_row(report)
    assert row["status"] == "unverified"
    assert "strength" not in row["facts"]
    assert "HTTP_TOKEN: strength not judged: not read" in report["warnings"]
    for value in (http_token, secret_id):
        assert leaks(value, "creds check output", out + err) == []
