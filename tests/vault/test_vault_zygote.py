"""A Vault AppRole agent started through the fork server stops as a normal start does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.contract_support import RawServer, assert_json_lines, call
from tests.support import base_env
from tests.vault.conftest import Bao
from tests.vault.test_vault_stdio import approle_env, token_events, vault_manifest
from tests.zygote_support import handshake, running_zygote

pytestmark = [pytest.mark.stdio]


def test_sigterm_to_the_launcher_revokes_the_approle_token(
    bao: Bao, write_manifest: Callable[..., Path], tmp_path: Path
) -> None:
    """SIGTERM to a launcher whose agent runs in a zygote's child revokes the child's AppRole
    token in OpenBao, and the launcher exits 0."""
    bao.put_kv2("scoped-mcp/research", API_TOKEN="zygote-sigterm-value")
    manifest = write_manifest(vault_manifest(bao))
    (tmp_path / "z").mkdir()
    with running_zygote(tmp_path / "z") as zygote:
        home = tmp_path / "raw"
        home.mkdir()
        env = base_env(
            home,
            AGENT_ID="agent-01",
            AGENT_TYPE="research",
            XDG_RUNTIME_DIR=str(zygote.runtime),
            **approle_env(bao),
        )
        server = RawServer.start(["--manifest", str(manifest)], env=env, cwd=home)
        try:
            handshake(server)
            assert len(zygote.wait_for_children(1)) == 1
            assert not server.ask(call(2, "vaulted_token_digest"))["result"]["isError"]
            server.process.terminate()
            assert server.process.wait(timeout=60) == 0
        finally:
            server.kill()
        assert "starting in-process" not in server.stderr()
    records = assert_json_lines((home / "state/scoped-mcp/audit/agent-01.jsonl").read_text())
    (login,) = token_events(records, "token_login")
    assert token_events(records, "token_revoked")
    assert bao.lookup_accessor(login["accessor"]) is None
