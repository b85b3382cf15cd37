"""A start-up that is refused after the Vault preflight logged in leaves no token behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scoped_mcp import server
from scoped_mcp.errors import ConfigError
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import load
from tests.contract_support import FIXTURES
from tests.vault.conftest import Bao


def accessors(bao: Bao) -> set[str]:
    return set(bao.admin.auth.token.list_accessors()["data"]["keys"])


def test_refusal_after_the_preflight_revokes_the_approle_token(
    bao: Bao, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preflight logs in with AppRole (spending the secret-id); when start-up is refused
    after it (here the audit log cannot be opened), the token it got is revoked, not left to
    live out its TTL."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    bao.put_kv2("scoped-mcp/research", API_TOKEN="refused-start-" + "c0ffee" * 3)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    manifest = tmp_path / "manifest.yml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "agent_type": "research",
                "modules": {"vaulted": {"type": "credential_modules.vaulted:VaultedModule"}},
                "audit": {"path": str(blocker / "audit.jsonl")},
                "credentials": {
                    "source": "vault",
                    "vault": {
                        "addr": bao.addr,
                        "auth": "approle",
                        "role_id_env": "VAULT_ROLE_ID",
                        "secret_id_env": "VAULT_SECRET_ID",
                        "path": "secret/scoped-mcp/{agent_type}",
                    },
                },
            }
        )
    )
    environ = {
        "VAULT_ROLE_ID": bao.role_id("research"),
        "VAULT_SECRET_ID": bao.secret_id("research"),
    }
    before = accessors(bao)
    with pytest.raises(ConfigError, match="audit log"):
        server.build(load(manifest), AgentContext("refused-1", "research"), environ)
    assert accessors(bao) - before == set()
