"""examples/vault: setup.sh takes an empty OpenBao to an agent that sends with a KV token."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests.services.fake_http import serve_http
from tests.services.ntfy import NtfyService
from tests.support import ServerHandle
from tests.vault.conftest import Bao

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "vault"


def setup_sh(bao: Bao, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run examples/vault/setup.sh as the README says, with HOME at ``home``."""
    environ = {
        **bao.env(),
        "HOME": str(home),
        "BAO_ADDR": bao.addr,
        "BAO_TOKEN": bao.root_token,
        "BAO": bao.binary,
        **env,
    }
    return subprocess.run(
        ["bash", str(EXAMPLE / "setup.sh"), *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.anyio
async def test_setup_then_agent_sends_with_the_vault_token(
    empty_bao: Bao,
    tmp_path: Path,
    serve: Callable[..., AbstractAsyncContextManager[ServerHandle]],
) -> None:
    """setup.sh seeds KV, writes role-id and wrapped secret-id; the bundled manifest then works."""
    bao = empty_bao
    home = tmp_path / "home"
    token = "tk_" + secrets.token_hex(12)
    ntfy = NtfyService(token=token)
    with serve_http(ntfy) as server_http:
        seed = tmp_path / "seed"
        seed.mkdir()
        (seed / "notifier.json").write_text(
            json.dumps({"NTFY_URL": server_http.url, "NTFY_TOKEN": token})
        )
        done = setup_sh(bao, home, "notifier", SEED_DIR=str(seed))
        assert done.returncode == 0, done.stderr
        assert token not in done.stdout + done.stderr
        config = home / ".config" / "scoped-mcp" / "vault" / "notifier"
        assert {p.name: p.stat().st_mode & 0o777 for p in config.iterdir()} == {
            "role-id": 0o600,
            "secret-id": 0o600,
        }
        wrapped = (config / "secret-id").read_text().strip()
        info = bao.admin.adapter.post("/v1/sys/wrapping/lookup", json={"token": wrapped})
        assert info["data"]["creation_path"].endswith("scoped-mcp-notifier/secret-id")

        manifest = EXAMPLE / "manifests" / "notifier.yml"
        async with serve(manifest, agent_id="notifier-01", env={"VAULT_ADDR": bao.addr}) as agent:
            result = await agent.call("ntfy_send", {"message": "deployed"})
        assert result["sent"] is True
        assert ntfy.messages[0]["topic"] == "vault-notifier-01"
        assert token not in json.dumps(result)

        # The secret-id was unwrapped at the first start: the next start needs a fresh one.
        assert setup_sh(bao, home, "--secret-id", "notifier").returncode == 0
        async with serve(manifest, agent_id="notifier-02", env={"VAULT_ADDR": bao.addr}) as agent:
            assert (await agent.call("ntfy_send", {"message": "again"}))["sent"] is True
    assert [m["topic"] for m in ntfy.messages] == ["vault-notifier-01", "vault-notifier-02"]


def test_setup_without_arguments_prints_usage(empty_bao: Bao, tmp_path: Path) -> None:
    """setup.sh with no agent type exits 2 with its usage line and changes nothing."""
    bao = empty_bao
    done = setup_sh(bao, tmp_path / "home")
    assert done.returncode == 2
    assert "usage:" in done.stderr
    assert not (tmp_path / "home" / ".config").exists()
