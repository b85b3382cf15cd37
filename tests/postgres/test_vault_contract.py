"""The Vault backend keeps the whole secret-backend contract on a real OpenBao, leases included.

The static part reads KV v2 secrets; the leased part issues PostgreSQL logins from OpenBao's
database engine (``vault-dynamic:``), renews and revokes them.
"""

from __future__ import annotations

import secrets

import pytest

from scoped_mcp.credentials.backends.interface import SecretBackend
from scoped_mcp.credentials.backends.vault import VaultBackend
from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.testing.secret_backend import LeasedBackendContract
from tests.postgres.conftest import Database


@pytest.fixture(scope="module")
def role_path(database: Database) -> str:
    """A database role issuing renewable five-minute logins."""
    return database.add_role("contract", default_ttl="5m", max_ttl="30m")


class TestVaultBackend(LeasedBackendContract):
    """KV v2 for static values, the database engine for leased ones."""

    @pytest.fixture(autouse=True)
    def _engine(self, database: Database, role_path: str) -> None:
        self.database = database
        self.role_path = role_path

    def make_backend(self) -> SecretBackend:
        bao = self.database.bao
        spec = VaultSpec(addr=bao.addr, auth="token", token_env="TOKEN", timeout=5)
        return VaultBackend(spec, {"TOKEN": bao.root_token})

    def provision(self, backend: SecretBackend, name: str, value: str) -> SecretRef:
        path = f"contract/{secrets.token_hex(4)}"
        self.database.bao.put_kv2(path, **{name: value})
        return SecretRef("vault", f"secret/{path}", name)

    def missing_ref(self, backend: SecretBackend) -> SecretRef:
        return SecretRef("vault", "secret/contract/not-there", "nothing")

    def leased_ref(self, backend: SecretBackend) -> SecretRef:
        return SecretRef("vault-dynamic", self.role_path, "password")
