"""The broker fetches just in time, seals, caches by TTL or lease, renews, rotates and revokes."""

from __future__ import annotations

import gc
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from scoped_mcp.credentials.broker import CredentialBroker
from scoped_mcp.credentials.plan import KeyPlan
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.credentials.view import ModuleCredentials
from scoped_mcp.errors import BackendUnavailable, CredentialError
from scoped_mcp.redaction import Redactor
from scoped_mcp.testing.memory_backend import MemoryBackend

pytestmark = pytest.mark.anyio
SECRET = "tok-9f8e7d6c5b4a"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    backend: MemoryBackend,
    keys: dict[str, str],
    *,
    ttl: float = 300,
    clock: Clock | None = None,
    events: list[tuple[str, dict[str, object]]] | None = None,
) -> tuple[CredentialBroker, Redactor]:
    plans = {
        "mod": {
            key: KeyPlan("mod", key, SecretRef("mem", *path.split("#")), required=True)
            for key, path in keys.items()
        }
    }
    redactor = Redactor()
    broker = CredentialBroker(
        plans=plans,
        backends={"mem": backend},
        ttl=ttl,
        redactor=redactor,
        on_event=(lambda action, **f: events.append((action, f))) if events is not None else None,
        clock=clock or Clock(),
    )
    return broker, redactor


async def test_nothing_is_fetched_until_a_call_needs_it() -> None:
    """Creating the broker and a module view reads no secret; the first use reads it once."""
    backend = MemoryBackend()
    backend.sources["kv"] = {"token": SECRET}
    broker, _ = make(backend, {"TOKEN": "kv#token"})
    view = ModuleCredentials(broker, "mod", frozenset())
    assert backend.fetches == 0
    async with view.use("TOKEN") as plain:
        assert plain.text() == SECRET
    async with view.use("TOKEN") as plain:
        assert plain.text() == SECRET
    assert backend.fetches == 1


async def test_keys_sharing_a_source_share_one_read() -> None:
    """Two keys that are fields of one source are served by a single fetch."""
    backend = MemoryBackend()
    backend.sources["db"] = {"user": "u-123456", "password": "p-654321"}
    broker, _ = make(backend, {"USER": "db#user", "PASSWORD": "db#password"})
    view = ModuleCredentials(broker, "mod", frozenset())
    async with view.use("USER") as user, view.use("PASSWORD") as password:
        assert (user.text(), password.text()) == ("u-123456", "p-654321")
    assert backend.fetches == 1


async def test_static_values_are_read_again_after_the_ttl() -> None:
    """A rotated static value reaches the next call after the TTL, with no restart."""
    clock = Clock()
    backend = MemoryBackend()
    backend.sources["kv"] = {"token": "old-value-1"}
    broker, _ = make(backend, {"TOKEN": "kv#token"}, ttl=10, clock=clock)
    view = ModuleCredentials(broker, "mod", frozenset())
    assert view["TOKEN"] == "old-value-1"
    backend.sources["kv"]["token"] = "new-value-2"
    clock.now += 9
    assert view["TOKEN"] == "old-value-1"
    clock.now += 2
    assert view["TOKEN"] == "new-value-2"


async def test_undeclared_key_is_an_error_at_once() -> None:
    """A module asking for a key it did not declare gets a CredentialError, not a value."""
    backend = MemoryBackend()
    backend.sources["kv"] = {"token": SECRET, "other": "x-secret-other"}
    broker, _ = make(backend, {"TOKEN": "kv#token"})
    view = ModuleCredentials(broker, "mod", frozenset())
    with pytest.raises(CredentialError, match="did not declare"):
        view["OTHER"]
    with pytest.raises(CredentialError, match="did not declare"):
        async with view.use("OTHER"):
            pass


async def test_cache_holds_only_ciphertext_and_reprs_show_nothing() -> None:
    """After a fetch the cache holds sealed bytes only, and no repr contains the value."""
    backend = MemoryBackend()
    backend.sources["kv"] = {"token": SECRET}
    broker, redactor = make(backend, {"TOKEN": "kv#token"})
    view = ModuleCredentials(broker, "mod", frozenset())
    async with view.use("TOKEN") as plain:
        assert SECRET not in repr(plain)
    for entry in broker._cache.values():
        for sealed in entry.fields.values():
            assert SECRET.encode() not in sealed.ciphertext
            assert SECRET not in repr(sealed)
    assert SECRET not in repr(broker) + repr(view) + repr(redactor)
    assert redactor.scrub(f"x{SECRET}y") == "x[REDACTED]y"


async def test_plaintext_buffer_is_wiped_after_the_block() -> None:
    """The bytes a call saw are zeroed when its block ends."""
    backend = MemoryBackend()
    backend.sources["kv"] = {"token": SECRET}
    broker, _ = make(backend, {"TOKEN": "kv#token"})
    view = ModuleCredentials(broker, "mod", frozenset())
    async with view.use("TOKEN") as plain:
        buffer = plain._buffer
        assert bytes(buffer) == SECRET.encode()
    assert bytes(buffer) == bytes(len(SECRET))
    gc.collect()


async def test_backend_down_fails_only_calls_without_a_live_value() -> None:
    """With the backend down, a cached value keeps working and an expired one fails by name."""
    clock = Clock()
    events: list[tuple[str, dict[str, object]]] = []
    backend = MemoryBackend()
    backend.sources["kv"] = {"token": SECRET}
    backend.sources["kv2"] = {"token": "second-secret-xyz"}
    broker, _ = make(
        backend, {"TOKEN": "kv#token", "OTHER": "kv2#token"}, ttl=10, clock=clock, events=events
    )
    view = ModuleCredentials(broker, "mod", frozenset())
    assert view["TOKEN"] == SECRET
    backend.down = True
    assert view["TOKEN"] == SECRET
    with pytest.raises(BackendUnavailable, match="OTHER unavailable: memory backend unreachable"):
        view["OTHER"]
    backend.down = False
    assert view["OTHER"] == "second-secret-xyz"
    failed = [f for action, f in events if action == "failed"]
    assert failed
    assert failed[0]["key"] == ["OTHER"]
    assert failed[0]["status"] == "unreachable"
    assert not [f for _, f in events if SECRET in repr(f)]


async def test_dynamic_lease_is_renewed_in_the_background_and_revoked_at_close() -> None:
    """A leased secret is renewed at about 2/3 of its TTL while in use, and revoked at close."""
    clock = Clock()
    backend = MemoryBackend(lease_ttl=0.6)
    backend.sources["db/creds/ro"] = {"password": "pw"}
    backend.dynamic.add("db/creds/ro")
    events: list[tuple[str, dict[str, object]]] = []
    broker, _ = make(backend, {"PW": "db/creds/ro#password"}, events=events, clock=clock)
    view = ModuleCredentials(broker, "mod", frozenset())
    first = view["PW"]
    for _ in range(3):
        clock.now += 0.45
        await broker.maintain_once()
    assert view["PW"] == first
    assert backend.renewals >= 2
    assert backend.fetches == 1
    await broker.close()
    assert backend.revoked == ["db/creds/ro/1"]
    assert backend.closed
    actions = [a for a, _ in events]
    assert actions[0] == "issued"
    assert "renewed" in actions
    assert actions[-1] == "revoked"


async def test_lease_capped_by_max_ttl_is_replaced_early_and_old_one_revoked() -> None:
    """When renewal is capped near max_ttl the broker issues a new lease and revokes the old one."""
    clock = Clock()
    backend = MemoryBackend(lease_ttl=0.5, max_ttl=0.6)
    backend.sources["db/creds/ro"] = {"password": "pw"}
    backend.dynamic.add("db/creds/ro")
    events: list[tuple[str, dict[str, object]]] = []
    broker, _ = make(backend, {"PW": "db/creds/ro#password"}, events=events, clock=clock)
    view = ModuleCredentials(broker, "mod", frozenset())
    first = view["PW"]
    clock.now += 0.4  # renewal due: capped at 0.1 s, so the lease is replaced
    await broker.maintain_once()
    clock.now += 0.3  # the overlap is over: the old lease is revoked
    await broker.maintain_once()
    second = view["PW"]
    assert first != second
    assert "rotated" in [a for a, _ in events]
    assert "db/creds/ro/1" in backend.revoked
    await broker.close()


async def test_replaced_backend_token_moves_leases_to_the_new_token() -> None:
    """When the backend's own token is replaced, its leases are re-issued at once, old revoked."""
    clock = Clock()
    backend = MemoryBackend(lease_ttl=30)
    backend.sources["db/creds/ro"] = {"password": "pw"}
    backend.dynamic.add("db/creds/ro")
    events: list[tuple[str, dict[str, object]]] = []
    broker, _ = make(backend, {"PW": "db/creds/ro#password"}, events=events, clock=clock)
    view = ModuleCredentials(broker, "mod", frozenset())
    first = view["PW"]
    backend.sink("token_login", replaces="old-accessor")
    await broker.maintain_once()  # no time passes: the lease moves at once
    assert view["PW"] != first
    assert "rotated" in [a for a, _ in events]
    assert ("token_login", {"replaces": "old-accessor"}) in events
    await broker.close()
    assert "db/creds/ro/1" in backend.revoked


async def test_a_backend_failing_oddly_does_not_stop_maintenance() -> None:
    """A renew that raises something unexpected is logged, retried later, and the loop goes on."""

    class Odd(MemoryBackend):
        def renew(self, lease: Any) -> Any:
            self.renewals += 1
            raise RuntimeError("malformed answer")

    clock = Clock()
    backend = Odd(lease_ttl=0.3)
    backend.sources["db/creds/ro"] = {"password": "pw"}
    backend.dynamic.add("db/creds/ro")
    broker, _ = make(backend, {"PW": "db/creds/ro#password"}, clock=clock)
    view = ModuleCredentials(broker, "mod", frozenset())
    view["PW"]
    clock.now += 0.6
    await broker.maintain_once()
    assert backend.renewals >= 1
    await broker.close()


async def test_the_maintenance_loop_runs_rounds_until_cancelled() -> None:
    """maintain() keeps running rounds (real time here) and stops cleanly when cancelled."""
    backend = MemoryBackend(lease_ttl=30)
    backend.sources["db/creds/ro"] = {"password": "pw"}
    backend.dynamic.add("db/creds/ro")
    broker, _ = make(backend, {"PW": "db/creds/ro#password"})
    view = ModuleCredentials(broker, "mod", frozenset())
    async with anyio.create_task_group() as group:
        group.start_soon(broker.maintain)
        view["PW"]
        await anyio.lowlevel.checkpoint()
        group.cancel_scope.cancel()
    await broker.close()
    assert backend.revoked == ["db/creds/ro/1"]


async def test_membership_is_about_declared_keys_and_fetches_nothing() -> None:
    """`KEY in credentials` is True for a declared key, False otherwise, without a fetch."""
    backend = MemoryBackend()
    backend.sources["kv"] = {"token": SECRET}
    broker, _ = make(backend, {"TOKEN": "kv#token"})
    view = ModuleCredentials(broker, "mod", frozenset())
    assert "TOKEN" in view
    assert "OTHER" not in view
    assert backend.fetches == 0


async def test_missing_optional_key_is_asked_for_once_per_ttl() -> None:
    """An optional key found missing is not read again, nor audited again, until the TTL passes."""
    clock = Clock()
    events: list[tuple[str, dict[str, object]]] = []
    backend = MemoryBackend()
    plans = {"mod": {"OPT": KeyPlan("mod", "OPT", SecretRef("mem", "kv", "opt"), required=False)}}
    broker = CredentialBroker(
        plans=plans,
        backends={"mem": backend},
        ttl=10,
        redactor=Redactor(),
        on_event=lambda action, **f: events.append((action, f)),
        clock=clock,
    )
    view = ModuleCredentials(broker, "mod", frozenset({"OPT"}))
    for _ in range(5):
        assert not await view.has("OPT")
    assert backend.fetches == 1
    assert [a for a, _ in events] == ["failed"]
    backend.sources["kv"] = {"opt": "now-set-value"}
    clock.now += 11
    assert await view.has("OPT")
    assert backend.fetches == 2


class _UnclosableBackend(MemoryBackend):
    """A memory backend whose close fails, as a Vault that refuses the token revocation would."""

    def close(self) -> None:
        raise BackendUnavailable("memory backend unreachable at close")


async def test_a_backend_close_that_fails_at_shutdown_is_a_failed_event() -> None:
    """A backend that cannot give back what it holds at shutdown is audited as ``failed``."""
    backend = _UnclosableBackend()
    backend.sources["kv"] = {"v": "x"}
    events: list[tuple[str, dict[str, object]]] = []
    broker, _ = make(backend, {"V": "kv#v"}, events=events)
    await broker.close()
    assert events == [
        (
            "failed",
            {
                "backend": "mem",
                "status": "unreachable",
                "error": "memory backend unreachable at close",
            },
        )
    ]
