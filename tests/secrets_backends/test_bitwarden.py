"""secrets_backends/bitwarden/setup.sh against a stand-in bw: idempotent, 0600, no secret shown."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.fixtures.fake_bw import BW, FakeVault, login_item

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "secrets_backends" / "bitwarden" / "setup.sh"
PATH = f"{BW.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"


def setup_sh(config: Path, *types: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run setup.sh with CONFIG_DIR at ``config`` and the stand-in bw first on PATH."""
    environ = {
        "HOME": str(config.parent),
        "PATH": PATH,
        "LANG": "C.UTF-8",
        "CONFIG_DIR": str(config),
    }
    return subprocess.run(
        ["sh", str(SETUP), *types],
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_second_run_unlocks_again_without_logging_in(tmp_path: Path) -> None:
    """Run twice: the first logs in, the second only unlocks; the session file stays 0600."""
    config = tmp_path / "scoped-mcp"
    vault = FakeVault(config / "bw", logged_in=False)
    vault.extra.update(client_id="user.agents", client_secret="cs-0123456789")
    vault.add(login_item("scoped-mcp/research", API_TOKEN="tk-0123456789"))
    login = {"VAULTWARDEN_URL": "https://vault.example.test", "BW_CLIENTID": "user.agents"}
    first = setup_sh(
        config,
        "research",
        BW_CLIENTSECRET="cs-0123456789",
        BW_PASSWORD=vault.master_password,
        **login,
    )
    second = setup_sh(config, "research", BW_PASSWORD=vault.master_password)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "logged in to https://vault.example.test" in first.stdout
    assert "logged in" not in second.stdout
    assert "research: item scoped-mcp/research found" in second.stdout
    session = config / "bw-session"
    assert session.read_text().strip() == vault.session
    assert session.stat().st_mode & 0o777 == 0o600
    logins = [run for run in vault.runs() if run["argv"][:1] == ["login"]]
    assert len(logins) == 1
    shown = first.stdout + first.stderr + second.stdout + second.stderr
    assert vault.session not in shown
    assert vault.master_password not in shown


def test_a_wrong_master_password_keeps_the_previous_session_file(tmp_path: Path) -> None:
    """A failed unlock exits non-zero and leaves the last good session key and no partial file."""
    config = tmp_path / "scoped-mcp"
    vault = FakeVault(config / "bw")
    vault.add(login_item("scoped-mcp/ops", API_TOKEN="tk-0123456789"))
    assert setup_sh(config, "ops", BW_PASSWORD=vault.master_password).returncode == 0
    assert (config / "bw-session").read_text().strip() == vault.session
    failed = setup_sh(config, "ops", BW_PASSWORD="not-the-password")
    assert failed.returncode != 0
    assert (config / "bw-session").read_text().strip() == vault.session
    assert sorted(p.name for p in config.iterdir()) == ["bw", "bw-session"]
