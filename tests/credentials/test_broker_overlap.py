"""The broker under overlapping fetches of one dynamic source: no lease is orphaned."""

from __future__ import annotations

import threading

import anyio
import anyio.to_thread
import pytest

from scoped_mcp.credentials.backends.interface import Fetched
from scoped_mcp.credentials.broker import CredentialBroker, KeyPlan
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.credentials.view import ModuleCredentials
from scoped_mcp.redaction import Redactor
from tests.credentials.memory_backend import MemoryBackend

pytestmark = pytest.mark.anyio


class GatedBackend(MemoryBackend):
    """Holds its first fetch (in the broker's worker thread) until the test releases it."""

    def __init__(self, **kwargs: float) -> None:
        super().__init__(**kwargs)
        self.entered = threading.Event()
        self.release = threading.Event()
        self._gate = True

    def fetch(self, ref: SecretRef) -> Fetched:
        if self._gate:
            self._gate = False
            self.entered.set()
            self.release.wait(5)
        return super().fetch(ref)


def broker_for(backend: MemoryBackend, keys: dict[str, str]) -> CredentialBroker:
    plans = {
        "mod": {
            key: KeyPlan("mod", key, SecretRef("mem", *ref.split("#")), required=True)
            for key, ref in keys.items()
        }
    }
    return CredentialBroker(plans=plans, backends={"mem": backend}, ttl=300, redactor=Redactor())


async def test_overlapping_fetches_of_a_dynamic_source_leave_no_lease_unrevoked() -> None:
    """Two reads of one dynamic source that overlap (a seed-style ``credentials[KEY]`` while an
    async ``use`` is still fetching) issue two leases; the one the cache drops is still revoked."""
    backend = GatedBackend(lease_ttl=60)
    backend.sources["db"] = {"password": "pw-123456"}
    backend.dynamic.add("db")
    broker = broker_for(backend, {"PASSWORD": "db#password"})
    view = ModuleCredentials(broker, "mod", frozenset())

    async def use_async() -> None:
        async with view.use("PASSWORD"):
            pass

    async with anyio.create_task_group() as group:
        group.start_soon(use_async)
        await anyio.to_thread.run_sync(backend.entered.wait, 5)
        assert view["PASSWORD"].startswith("pw-123456")  # the seed-style read, on the loop
        backend.release.set()
    await broker.close()
    assert backend.fetches == 2
    assert sorted(backend.revoked) == ["db/1", "db/2"]
