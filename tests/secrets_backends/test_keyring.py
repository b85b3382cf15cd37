"""secrets_backends/keyring: provision.py stores keys the bundled manifest then reads.

The keyring is keyrings.alt's file backend under a temp dir (``PYTHON_KEYRING_BACKEND``,
``XDG_DATA_HOME``, ``XDG_CONFIG_HOME``), never the user's own keyring.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import yaml

from tests.secrets_backends.scripts import BACKENDS, run_script
from tests.services.fake_http import serve_http
from tests.services.ntfy import NtfyService
from tests.support import ServerHandle, base_env, run_cli

PROVISION = BACKENDS / "keyring" / "provision.py"
MANIFEST = BACKENDS / "keyring" / "notifier.yml"
PLAINTEXT = "keyrings.alt.file.PlaintextKeyring"


def keyring_env(tmp_path: Path, backend: str = PLAINTEXT) -> dict[str, str]:
    """Point keyring at a backend and data directory of this test only."""
    return {
        "PYTHON_KEYRING_BACKEND": backend,
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }


def creds_check(tmp_path: Path, home: Path) -> tuple[int, str, str]:
    env = base_env(home, **keyring_env(tmp_path))
    done = run_cli(
        "creds", "check", "--manifest", str(MANIFEST), "--agent-id", "notifier-01", env=env
    )
    return done.returncode, done.stdout, done.stderr


def provision_notifier(tmp_path: Path, url: str, token: str) -> str:
    """Run provision.py as the README says, storing NTFY_URL and NTFY_TOKEN; return its stdout."""
    done = run_script(
        PROVISION,
        "scoped-mcp/notifier",
        "NTFY_URL",
        "NTFY_TOKEN",
        home=tmp_path / "home",
        stdin=f"{url}\n{token}\n",
        **keyring_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    assert token not in done.stdout + done.stderr
    return done.stdout


def test_provision_then_creds_check_says_ok(tmp_path: Path) -> None:
    """provision.py stores both keys in a 0600 keyring file; creds check finds both ok."""
    token = "tk_" + secrets.token_hex(12)
    out = provision_notifier(tmp_path, "http://127.0.0.1:9", token)
    assert out.splitlines() == [
        "scoped-mcp/notifier/NTFY_URL: set",
        "scoped-mcp/notifier/NTFY_TOKEN: set",
        f"keyring backend {PLAINTEXT}",
    ]
    stored = tmp_path / "data" / "python_keyring" / "keyring_pass.cfg"
    assert stored.stat().st_mode & 0o777 == 0o600
    code, out, err = creds_check(tmp_path, tmp_path / "home")
    assert code == 0, out + err
    assert re.search(r"NTFY_URL\s.*\sok\b", out)
    assert re.search(r"NTFY_TOKEN\s.*\sok\b", out)
    assert "PlaintextKeyring" in out
    assert token not in out + err
    assert "127.0.0.1:9" not in out + err


@pytest.mark.anyio
async def test_the_real_server_sends_with_a_token_from_the_keyring(
    tmp_path: Path,
    serve: Callable[..., AbstractAsyncContextManager[ServerHandle]],
    write_manifest: Callable[..., Path],
) -> None:
    """The bundled manifest with NTFY_URL moved to env: the send uses the keyring's token."""
    token = "tk_" + secrets.token_hex(12)
    ntfy = NtfyService(token=token)
    with serve_http(ntfy) as fake_ntfy:
        provision_notifier(tmp_path, fake_ntfy.url, token)
        data = yaml.safe_load(MANIFEST.read_text())
        data["credentials"]["keys"] = {"NTFY_URL": "env:NTFY_URL"}
        manifest = write_manifest(data)
        env = {**keyring_env(tmp_path), "NTFY_URL": fake_ntfy.url}
        async with serve(manifest, agent_id="notifier-01", env=env) as agent:
            result = await agent.call("ntfy_send", {"message": "deployed"})
    assert result["sent"] is True
    assert ntfy.messages[0]["topic"] == "keyring-notifier-01"
    assert token not in json.dumps(result)


@pytest.mark.anyio
async def test_the_real_server_sends_with_two_keys_of_one_keyring_service(
    tmp_path: Path, serve: Callable[..., AbstractAsyncContextManager[ServerHandle]]
) -> None:
    """The bundled manifest's notifier sends with NTFY_URL and NTFY_TOKEN from the keyring."""
    token = "tk_" + secrets.token_hex(12)
    ntfy = NtfyService(token=token)
    with serve_http(ntfy) as fake_ntfy:
        provision_notifier(tmp_path, fake_ntfy.url, token)
        env = keyring_env(tmp_path)
        async with serve(MANIFEST, agent_id="notifier-01", env=env) as agent:
            result = await agent.call("ntfy_send", {"message": "deployed"})
    assert result["sent"] is True
    assert ntfy.messages[0]["topic"] == "keyring-notifier-01"
    assert token not in json.dumps(result)


def test_a_second_run_rewrites_only_what_changed(tmp_path: Path) -> None:
    """Re-running with the same value leaves the entry alone; a new value replaces it."""
    home = tmp_path / "home"
    env = keyring_env(tmp_path)
    first = run_script(PROVISION, "scoped-mcp/ops", "A", home=home, stdin="a-1234\n", **env)
    assert first.stdout.splitlines()[0] == "scoped-mcp/ops/A: set", first.stderr
    stored = tmp_path / "data" / "python_keyring" / "keyring_pass.cfg"
    before = stored.stat().st_mtime_ns
    again = run_script(PROVISION, "scoped-mcp/ops", "A", home=home, stdin="a-1234\n", **env)
    assert again.stdout.splitlines()[0] == "scoped-mcp/ops/A: unchanged"
    assert stored.stat().st_mtime_ns == before
    changed = run_script(PROVISION, "scoped-mcp/ops", "A", home=home, stdin="a-5678\n", **env)
    assert changed.stdout.splitlines()[0] == "scoped-mcp/ops/A: set"
    assert "a-5678" not in changed.stdout + changed.stderr


def test_a_backend_scoped_mcp_refuses_is_refused_before_reading_a_value(tmp_path: Path) -> None:
    """The fail keyring (configured) and the prompting EncryptedKeyring (named): exit 2."""
    env = keyring_env(tmp_path, "keyring.backends.fail.Keyring")
    home = tmp_path / "home"
    for backend, flags in [
        ("keyring.backends.fail.Keyring", []),
        ("keyrings.alt.file.EncryptedKeyring", ["--backend", "keyrings.alt.file.EncryptedKeyring"]),
    ]:
        done = run_script(PROVISION, "scoped-mcp/ops", "A", *flags, home=home, stdin="a-1\n", **env)
        assert done.returncode == 2
        assert f"keyring backend {backend}" in done.stderr
        assert "nothing stored" in done.stderr
    assert not (tmp_path / "data").exists()
