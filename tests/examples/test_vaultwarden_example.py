"""examples/vaultwarden: the bitwarden set-up script logs a bw profile in; the agent then sends."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests.fixtures.fake_bw import BW, FakeVault, login_item
from tests.services.fake_http import serve_http
from tests.services.ntfy import NtfyService
from tests.support import ServerHandle

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "vaultwarden"
SETUP = REPO / "secrets_backends" / "bitwarden" / "setup.sh"
PATH = f"{BW.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"


def setup_sh(home: Path, *types: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run secrets_backends/bitwarden/setup.sh with the stand-in bw first on PATH."""
    environ = {"HOME": str(home), "PATH": PATH, "LANG": "C.UTF-8", **env}
    return subprocess.run(
        ["sh", str(SETUP), *types],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.anyio
async def test_setup_then_agent_sends_with_the_vaultwarden_token(
    tmp_path: Path, serve: Callable[..., AbstractAsyncContextManager[ServerHandle]]
) -> None:
    """From a logged-out bw profile to a send that used the item's token, with no secret in argv."""
    home = tmp_path / "home"
    config = home / ".config" / "scoped-mcp"
    client_secret = "cs-" + secrets.token_hex(8)
    vault = FakeVault(config / "bw", logged_in=False)
    vault.extra.update(client_id="user.agents", client_secret=client_secret)
    token = "tk_" + secrets.token_hex(12)
    ntfy = NtfyService(token=token)
    with serve_http(ntfy) as fake_ntfy:
        vault.add(login_item("scoped-mcp/notifier", NTFY_URL=fake_ntfy.url, NTFY_TOKEN=token))
        password_file = tmp_path / "bw-master"
        password_file.write_text(vault.master_password)
        done = setup_sh(
            home,
            "notifier",
            VAULTWARDEN_URL="https://vault.example.test",
            BW_CLIENTID="user.agents",
            BW_CLIENTSECRET=client_secret,
            BW_PASSWORD_FILE=str(password_file),
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "notifier: item scoped-mcp/notifier found" in done.stdout
        session_file = config / "bw-session"
        assert session_file.read_text().strip() == vault.session
        assert session_file.stat().st_mode & 0o777 == 0o600

        manifest = EXAMPLE / "manifests" / "notifier.yml"
        async with serve(manifest, agent_id="notifier-01", env={"PATH": PATH}) as agent:
            result = await agent.call("ntfy_send", {"message": "deployed"})
        assert result["sent"] is True
        assert ntfy.messages[0]["topic"] == "vw-notifier-01"

    shown = done.stdout + done.stderr + json.dumps(result)
    hidden = (vault.session, vault.master_password, client_secret, token)
    assert not [value for value in hidden if value in shown]
    argv = [" ".join(run["argv"]) for run in vault.runs()]
    assert not [value for value in hidden for line in argv if value in line]
    assert any(line.endswith("list items --search scoped-mcp/notifier") for line in argv)


def test_setup_names_a_missing_item(tmp_path: Path) -> None:
    """An unlocked profile without the agent type's item: exit 1 and what to create."""
    home = tmp_path / "home"
    vault = FakeVault(home / ".config" / "scoped-mcp" / "bw")
    vault.write()
    done = setup_sh(home, "ops", BW_PASSWORD=vault.master_password)
    assert done.returncode == 1
    assert "no single item named scoped-mcp/ops" in done.stderr
