"""The in-memory test backend of scoped_mcp.testing keeps the whole secret-backend contract."""

from __future__ import annotations

from scoped_mcp.credentials.backends.interface import SecretBackend
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.testing.memory_backend import MemoryBackend
from scoped_mcp.testing.secret_backend import LeasedBackendContract


class TestMemoryBackend(LeasedBackendContract):
    """Static sources and leased ones, as the broker's own tests use them."""

    def make_backend(self) -> SecretBackend:
        backend = MemoryBackend(lease_ttl=30)
        backend.sources["db/creds/ro"] = {"username": "v-user-1", "password": "pw-contract"}
        backend.dynamic.add("db/creds/ro")
        return backend

    def provision(self, backend: SecretBackend, name: str, value: str) -> SecretRef:
        assert isinstance(backend, MemoryBackend)
        backend.sources[f"kv/{name}"] = {name: value}
        return SecretRef("mem", f"kv/{name}", name)

    def missing_ref(self, backend: SecretBackend) -> SecretRef:
        return SecretRef("mem", "kv/nothing-here", "nothing")

    def leased_ref(self, backend: SecretBackend) -> SecretRef:
        return SecretRef("mem", "db/creds/ro", "password")
