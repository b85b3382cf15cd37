"""The bitwarden backend against a stand-in bw: contract, fields, locked vaults, no leaks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from scoped_mcp.credentials.backends.bitwarden import BitwardenBackend
from scoped_mcp.credentials.backends.bitwarden.cli import PASSED_THROUGH
from scoped_mcp.credentials.backends.bitwarden.config import BitwardenSpec
from scoped_mcp.credentials.backends.interface import SecretBackend
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import (
    AccessDenied,
    BackendMisconfigured,
    BackendUnavailable,
    InsecureSource,
    SecretNotFound,
)
from scoped_mcp.testing.harness import write_manifest
from scoped_mcp.testing.secret_backend import SecretBackendContract
from tests.fixtures.fake_bw import BW, FakeVault, login_item
from tests.support import base_env, run_cli

REPO = str(Path(__file__).resolve().parents[2])
MODULE = "tests.fixtures.credential_modules.vaulted:VaultedModule"


def make(
    vault: FakeVault, environ: dict[str, str] | None = None, **spec: object
) -> BitwardenBackend:
    settings = {"bw_path": str(BW), "appdata_dir": vault.appdata, **spec}
    env = {"PATH": os.environ["PATH"], "HOME": str(vault.appdata.parent)}
    env.update({"BW_SESSION": vault.session} if environ is None else environ)
    return BitwardenBackend(BitwardenSpec.model_validate(settings), env)


@pytest.fixture
def vault(tmp_path: Path) -> FakeVault:
    fake = FakeVault(tmp_path / "bw-data")
    fake.write()
    return fake


class TestBitwardenBackend(SecretBackendContract):
    @pytest.fixture(autouse=True)
    def _vault(self, vault: FakeVault) -> None:
        self.vault = vault

    def make_backend(self) -> SecretBackend:
        return make(self.vault)

    def provision(self, backend: SecretBackend, name: str, value: str) -> SecretRef:
        self.vault.add(login_item(f"scoped-mcp/{name}", **{name: value}))
        return SecretRef("bitwarden", f"scoped-mcp/{name}", name)

    def missing_ref(self, backend: SecretBackend) -> SecretRef:
        return SecretRef("bitwarden", "no-such-item", "password")


def test_session_key_travels_only_in_a_minimal_environment(vault: FakeVault) -> None:
    """bw gets BW_SESSION in its environment, never on its command line, and nothing else secret."""
    item = vault.add(login_item("ntfy", password="pw-" + vault.session[-6:], username="bot"))
    backend = make(vault, {"BW_SESSION": vault.session, "OTHER_SECRET": "do-not-pass"})
    assert backend.fetch(SecretRef("bitwarden", "ntfy", "password")).values["username"] == "bot"
    assert backend.fetch(SecretRef("bitwarden", item["id"], "password")).values["password"]
    runs = vault.runs()
    assert [r["argv"][1] for r in runs] == ["sync", "list", "get"]
    allowed = {
        *PASSED_THROUGH,
        "LANG",
        "BW_NOINTERACTION",
        "BITWARDENCLI_APPDATA_DIR",
        "BW_SESSION",
    }
    for run in runs:
        assert vault.session not in " ".join(run["argv"])
        assert "BW_SESSION" in run["env"]
        # The stand-in is a Python script: a pyenv shim on PATH adds its own PYENV_* variables
        # when it starts the interpreter. They are the launcher's, not anything we passed.
        seen = {name for name in run["env"] if not name.lstrip("_").startswith("PYENV")}
        assert seen - {"PWD", "SHLVL", "_", "LC_CTYPE"} <= allowed


def test_every_field_kind_is_served(vault: FakeVault) -> None:
    """password, username, uri, notes and custom fields are served; totp never is."""
    item = login_item("svc", password="p4ss", username="u5er", API_TOKEN="t0ken")
    item["notes"] = "n0tes"
    item["login"]["uris"] = [{"uri": "https://ntfy.example"}]
    vault.add(item)
    values = make(vault).fetch(SecretRef("bitwarden", "svc", "API_TOKEN")).values
    assert values == {
        "password": "p4ss",
        "username": "u5er",
        "uri": "https://ntfy.example",
        "notes": "n0tes",
        "API_TOKEN": "t0ken",
    }
    with pytest.raises(BackendMisconfigured, match="TOTP"):
        make(vault).fetch(SecretRef("bitwarden", "svc", "totp"))


def test_name_must_match_exactly_and_once(vault: FakeVault) -> None:
    """A name picks the item with exactly that name; two such items are refused with their ids."""
    vault.add(login_item("ntfy", password="right"))
    vault.add(login_item("ntfy-ops", password="wrong"))
    assert make(vault).fetch(SecretRef("bitwarden", "ntfy", "password")).values["password"] == (
        "right"
    )
    twin = vault.add(login_item("ntfy", password="twin"))
    with pytest.raises(BackendMisconfigured) as info:
        make(vault).fetch(SecretRef("bitwarden", "ntfy", "password"))
    assert twin["id"] in info.value.diagnostics()
    assert "twin" not in info.value.diagnostics()


def test_missing_item_and_field_say_what_to_add(vault: FakeVault) -> None:
    """A missing custom field is SecretNotFound naming the item and field; check says missing."""
    vault.add(login_item("svc", password="p"))
    with pytest.raises(SecretNotFound, match="no field 'API_TOKEN'"):
        make(vault).fetch(SecretRef("bitwarden", "svc", "API_TOKEN"))
    assert make(vault).check(SecretRef("bitwarden", "gone", "password")).status == "missing"


def test_duplicate_custom_fields_are_refused(vault: FakeVault) -> None:
    """Two custom fields with one name are ambiguous: refused, never one picked silently."""
    item = login_item("svc", API_TOKEN="a")
    item["fields"].append({"name": "API_TOKEN", "value": "b", "type": 1})
    vault.add(item)
    with pytest.raises(BackendMisconfigured, match="more than one custom field"):
        make(vault).fetch(SecretRef("bitwarden", "svc", "API_TOKEN"))


def test_locked_vault_is_denied_with_the_unlock_command(vault: FakeVault) -> None:
    """A wrong or absent session key: AccessDenied and check 'denied', fix names bw unlock --raw."""
    vault.add(login_item("svc", password="p"))
    ref = SecretRef("bitwarden", "svc", "password")
    for environ in ({"BW_SESSION": "stale"}, {}):
        backend = make(vault, environ, sync_interval=0)
        with pytest.raises(AccessDenied) as info:
            backend.fetch(ref)
        assert "export BW_SESSION=$(bw unlock --raw)" in info.value.diagnostics()
        finding = backend.check(ref)
        assert (finding.status, finding.facts["vault"]) == ("denied", "locked")


def test_logged_out_vault_is_denied_with_the_login_command(vault: FakeVault) -> None:
    """No account logged in: AccessDenied whose fix says bw login."""
    vault.logged_in = False
    vault.write()
    with pytest.raises(AccessDenied) as info:
        make(vault).fetch(SecretRef("bitwarden", "svc", "password"))
    assert "bw login" in info.value.diagnostics()
    assert make(vault).describe().facts["vault"] == "unauthenticated"


def test_sync_brings_a_rotated_value_after_the_interval(vault: FakeVault) -> None:
    """bw sync runs before a read once sync_interval has passed, so rotations arrive."""
    item = vault.add(login_item("svc", password="old"))
    now = [0.0]
    spec = BitwardenSpec(bw_path=str(BW), appdata_dir=vault.appdata, sync_interval=60)
    env = {"PATH": os.environ["PATH"], "BW_SESSION": vault.session}
    backend = BitwardenBackend(spec, env, clock=lambda: now[0])
    ref = SecretRef("bitwarden", "svc", "password")
    assert backend.fetch(ref).values["password"] == "old"
    vault.extra["remote_items"] = [{**item, "login": {**item["login"], "password": "new"}}]
    vault.write()
    now[0] = 30
    assert backend.fetch(ref).values["password"] == "old"
    now[0] = 61
    assert backend.fetch(ref).values["password"] == "new"
    assert [r["argv"][1] for r in vault.runs()].count("sync") == 2


def test_session_file_must_be_private_and_is_reread_when_locked(
    vault: FakeVault, tmp_path: Path
) -> None:
    """A 0644 session file is refused; after bw lock, a refreshed file is used without restart."""
    vault.add(login_item("svc", password="p"))
    session_file = tmp_path / "bw-session"
    session_file.write_text(vault.session)
    session_file.chmod(0o644)
    backend = make(vault, {}, session_file=session_file, sync_interval=0)
    ref = SecretRef("bitwarden", "svc", "password")
    with pytest.raises(InsecureSource) as info:
        backend.fetch(ref)
    assert f"chmod 600 {session_file}" in info.value.diagnostics()
    session_file.chmod(0o600)
    backend = make(vault, {}, session_file=session_file, sync_interval=0)
    assert backend.fetch(ref).values["password"] == "p"
    vault.session = "sess-after-relock"
    vault.write()
    session_file.write_text(vault.session)
    assert backend.fetch(ref).values["password"] == "p"


def test_missing_bw_names_the_install(vault: FakeVault) -> None:
    """No bw executable: BackendMisconfigured whose fix says how to install it."""
    backend = make(vault, bw_path="bw-not-installed-anywhere")
    with pytest.raises(BackendMisconfigured) as info:
        backend.fetch(SecretRef("bitwarden", "svc", "password"))
    assert "npm install -g @bitwarden/cli" in info.value.diagnostics()


def test_bw_output_never_reaches_an_error(vault: FakeVault, tmp_path: Path) -> None:
    """A bw that fails while printing vault data on stdout and stderr: none of it is quoted."""
    noisy = tmp_path / "noisy-bw"
    noisy.write_text(
        "#!/bin/sh\n"
        'case "$2" in status) echo \'{"status":"unlocked"}\'; exit 0;; esac\n'
        "echo 'stdout-secret-XYZ'; echo 'stderr-secret-XYZ weird failure' >&2; exit 3\n"
    )
    noisy.chmod(0o700)
    backend = make(vault, bw_path=str(noisy), sync_interval=0)
    with pytest.raises(BackendUnavailable) as info:
        backend.fetch(SecretRef("bitwarden", "svc", "password"))
    assert "secret-XYZ" not in info.value.diagnostics()
    assert "exit 3" in info.value.diagnostics()


def _manifest(tmp_path: Path, vault: FakeVault) -> Path:
    path = tmp_path / "agent.yml"
    data = {
        "agent_type": "research",
        "modules": {"vaulted": {"type": MODULE}},
        "credentials": {
            "source": "bitwarden",
            "bitwarden": {
                "bw_path": str(BW),
                "appdata_dir": str(vault.appdata),
                "item": "scoped-mcp/{agent_type}",
            },
        },
    }
    write_manifest(path, data)
    return path


@pytest.mark.parametrize(
    ("logged_in", "session_ok", "expect"),
    [
        (False, False, "bw login"),
        (True, False, "export BW_SESSION=$(bw unlock --raw)"),
    ],
)
def test_creds_check_reports_locked_and_logged_out(
    tmp_path: Path, vault: FakeVault, logged_in: bool, session_ok: bool, expect: str
) -> None:
    """scoped-mcp creds check: a logged-out or locked vault exits 1, says denied, prints the fix."""
    vault.logged_in = logged_in
    vault.add(login_item("scoped-mcp/research", API_TOKEN="tok-never-shown"))
    session = vault.session if session_ok else "stale-session"
    env = base_env(tmp_path / "home", PYTHONPATH=REPO, BW_SESSION=session)
    done = run_cli("creds", "check", "--manifest", str(_manifest(tmp_path, vault)), env=env)
    assert done.returncode == 1, done.stderr
    assert "denied" in done.stdout
    assert expect in done.stdout
    assert "tok-never-shown" not in done.stdout + done.stderr


def test_creds_check_ok_prints_no_value(tmp_path: Path, vault: FakeVault) -> None:
    """scoped-mcp creds check with an unlocked vault: exit 0, the key ok, its value nowhere."""
    vault.add(login_item("scoped-mcp/research", API_TOKEN="tok-never-shown", OTHER_TOKEN="o-tok"))
    env = base_env(tmp_path / "home", PYTHONPATH=REPO, BW_SESSION=vault.session)
    done = run_cli("creds", "check", "--manifest", str(_manifest(tmp_path, vault)), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "API_TOKEN" in done.stdout
    assert "tok-never-shown" not in done.stdout + done.stderr
    assert all(vault.session not in " ".join(run["argv"]) for run in vault.runs())


@pytest.mark.anyio
async def test_server_uses_a_bitwarden_secret_over_stdio(
    tmp_path: Path, vault: FakeVault, serve: object
) -> None:
    """A served tool call uses the Bitwarden value (its digest matches) without returning it."""
    token = "tok-" + vault.session[-10:]
    vault.add(login_item("scoped-mcp/research", API_TOKEN=token))
    manifest = _manifest(tmp_path, vault)
    start = serve  # the conftest fixture, typed loosely to keep this test short
    async with start(  # type: ignore[operator]
        manifest, env={"PYTHONPATH": REPO, "BW_SESSION": vault.session}
    ) as server:
        digest = await server.call("vaulted_token_digest", {})
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert all(vault.session not in " ".join(run["argv"]) for run in vault.runs())
