"""The credential broker: hands each module the secrets it declared, just in time, sealed.

- Nothing is fetched at start-up except to prove that it can be (``check.py``); a value is read the
  first time a call needs it, sealed at once, and cached for its TTL (static values) or lease
  (dynamic ones). Keys that share a source (one KV secret, one dynamic path) share one read.
- Dynamic leases are renewed in the background at about two thirds of their TTL (with jitter) and
  replaced early when renewal is refused or capped by max_ttl; the old lease is revoked after a
  short overlap. At shutdown every lease is revoked, then each backend closes (Vault revokes its
  own token). Both are bounded in time.
- A backend that fails makes only the calls that need a value it cannot serve fail; values whose
  lease is still live keep working, and the next call after the backend returns recovers.
- Every event (fetched, issued, renewed, rotated, revoked, failed) goes to ``on_event`` with key
  names and the backend, never a value.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager, contextmanager
from typing import Any, Protocol

import anyio
import anyio.from_thread
import anyio.to_thread

from scoped_mcp.credentials.backends.interface import EventSink, Fetched, SecretBackend
from scoped_mcp.credentials.cache import Entry as _Entry
from scoped_mcp.credentials.cache import carry_leases as _carry_leases
from scoped_mcp.credentials.exposure import Owned, Ownership, Withdrawn
from scoped_mcp.credentials.lease import LeaseInfo, Opening, Plaintext, Sealer
from scoped_mcp.credentials.plan import KeyPlan
from scoped_mcp.credentials.reader import SourceReader
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import BackendUnavailable, CredentialError, SecretNotFound

_log = logging.getLogger(__name__)
RENEW_FRACTION = 2 / 3
ROTATE_OVERLAP_SECONDS = 30.0
MIN_SLEEP, MAX_SLEEP = 0.05, 30.0
SHUTDOWN_SECONDS = 5.0


class Scrubber(Protocol):
    """What the broker needs of the redactor: learn each released value, scrub error texts."""

    def add(self, value: str, *, owner: str | None = None) -> None: ...

    def scrub(self, text: str) -> str: ...


def _context(ref: SecretRef) -> bytes:
    return f"{ref.scheme}:{ref.path}#{ref.field or ''}".encode()


class CredentialBroker:
    """Owns every secret of one server process."""

    def __init__(
        self,
        *,
        plans: Mapping[str, Mapping[str, KeyPlan]],
        backends: Mapping[str, SecretBackend],
        ttl: float,
        redactor: Scrubber,
        on_event: EventSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._plans = plans
        self._backends = backends
        self._ttl = ttl
        self._redactor = redactor
        self._emit = on_event or (lambda *a, **k: None)
        self._clock = clock
        self._sealer = Sealer()
        self._cache: dict[tuple[str, str], _Entry] = {}
        self._locks: dict[tuple[str, str], anyio.Lock] = {}
        self._wake = anyio.Event()
        self._token_replaced: set[int] = set()
        self._owners = Ownership()
        self._per_call: frozenset[tuple[str, str]] = frozenset()
        self._reader = SourceReader(
            backends, ttl=ttl, clock=clock, scrub=redactor.scrub, event=self._event
        )
        for backend in self._distinct_backends():
            backend.attach_events(self._backend_sink(backend))

    def _distinct_backends(self) -> list[SecretBackend]:
        """Each backend once (vault and vault-dynamic share one)."""
        return list({id(b): b for b in self._backends.values()}.values())

    def _backend_sink(self, backend: SecretBackend) -> EventSink:
        """Forward a backend's own events; a replaced token means its leases must move.

        Vault ties every lease to the token that created it: when the broker's token is replaced
        (re-login past max_ttl), leases issued under the old one die with it, so they are
        re-issued under the new token at once, with the usual overlap.
        """

        def sink(action: str, **fields: Any) -> None:
            self._emit(action, **fields)
            if action == "token_login" and fields.get("replaces"):
                self._token_replaced.add(id(backend))
                self._poke()

        return sink

    def _poke(self) -> None:
        """Wake the maintenance loop, from its own thread or a worker thread."""
        try:
            anyio.from_thread.run_sync(self._wake.set)
        except RuntimeError:
            self._wake.set()

    def __repr__(self) -> str:
        return f"CredentialBroker(<{len(self._cache)} sealed sources>)"

    # -- lookup ------------------------------------------------------------------------------

    def plan(self, module: str, key: str) -> KeyPlan:
        """The plan for a declared key; an undeclared key is a programming error."""
        plan = self._plans.get(module, {}).get(key)
        if plan is None:
            raise CredentialError(
                f"module {module!r} asked for credential {key!r}, which it did not declare"
            )
        return plan

    def keys_of(self, module: str) -> list[str]:
        """The keys a module declared."""
        return sorted(self._plans.get(module, {}))

    def backend_for(self, ref: SecretRef) -> SecretBackend:
        """The backend serving a reference's scheme."""
        return self._reader.backend_for(ref)

    @property
    def fetch_count(self) -> int:
        """How many reads the broker has sent to backends."""
        return self._reader.fetch_count

    # -- values ------------------------------------------------------------------------------

    def open(self, module: str, key: str) -> Opening:
        """The plaintext of a module's key for one ``async with`` (or ``with``) block.

        The value is fetched first if no live one is cached (off the event loop with
        ``async with``; in the calling thread with ``with``, for the seed API's
        ``credentials["KEY"]``), decrypted into a buffer, and the buffer wiped when the block ends.
        """
        plan = self.plan(module, key)

        async def opened() -> AbstractContextManager[Plaintext]:
            return self._reveal(plan, await self._live_entry(plan))

        return Opening(lambda: self._reveal(plan, self._live_entry_sync(plan)), opened)

    def lease_per_call(self, keys: Iterable[tuple[str, str]]) -> None:
        """Mark ``(module, key)`` pairs as read fresh inside each ``call_leases`` scope only
        (``per_call.py``): never cached, never read outside an approved call."""
        self._per_call = frozenset(keys)

    def call_leases(self) -> AbstractAsyncContextManager[None]:
        """The scope of one approved call; its per-call leases are revoked when it ends."""
        from scoped_mcp.credentials import per_call

        return per_call.call_leases(self)

    def protect(self, value: str) -> None:
        """Scrub a secret the broker did not fetch (an OAuth token a module refreshed) from
        everything that leaves the process, as every released value is."""
        self._redactor.add(value)

    def record(self, action: str, **fields: Any) -> None:
        """An audit event about such a secret (an OAuth grant refreshed): names, never values."""
        self._emit(action, **fields)

    async def ensure(self, module: str, key: str) -> None:
        """Make sure a module's key has a live value, fetching it if needed; reveals nothing."""
        await self._live_entry(self.plan(module, key))

    async def _live_entry(self, plan: KeyPlan) -> _Entry:
        if (plan.module, plan.key) in self._per_call:
            from scoped_mcp.credentials import per_call

            held = per_call.cached(self, plan)
            return held or per_call.keep(self, plan, await self._fetch_async(plan))
        source = self._source(plan.ref)
        entry = self._cache.get(source)
        if self._serves(entry, plan):
            assert entry is not None
            return entry
        lock = self._locks.setdefault(source, anyio.Lock())
        async with lock:
            entry = self._cache.get(source)
            if self._serves(entry, plan):
                assert entry is not None
                return entry
            fetched = await self._fetch_async(plan)
            return self._store(plan, fetched, action="fetched")

    def _live_entry_sync(self, plan: KeyPlan) -> _Entry:
        if (plan.module, plan.key) in self._per_call:
            from scoped_mcp.credentials import per_call

            return per_call.cached(self, plan) or per_call.keep(self, plan, self._reader.read(plan))
        entry = self._cache.get(self._source(plan.ref))
        if self._serves(entry, plan):
            assert entry is not None
            return entry
        return self._store(plan, self._reader.read(plan), action="fetched")

    def _serves(self, entry: _Entry | None, plan: KeyPlan) -> bool:
        """Whether a cached entry answers the plan's key without a read.

        A live static entry without the key's field (an optional key absent from a secrets file
        read for another key) is asked for again through the reader, which remembers a missing
        optional key for the TTL: the key then reads as "not set", as it does from ``env:``. A
        leased entry is never re-read for a field: that would issue a lease per call.
        """
        if entry is None or not entry.live(self._clock()):
            return False
        return entry.lease is not None or plan.ref.field in entry.fields

    def _source(self, ref: SecretRef) -> tuple[str, str]:
        """The cache key of what one fetch of ``ref`` reads: its path, or (for a backend whose
        read returns one field, such as a keyring's one username) its path and field."""
        backend = self._backends.get(ref.scheme)
        if backend is None or backend.shares_reads:
            return ref.source
        return (ref.scheme, f"{ref.path}#{ref.field or ''}")

    @contextmanager
    def _reveal(self, plan: KeyPlan, entry: _Entry) -> Iterator[Plaintext]:
        sealed = entry.fields.get(plan.ref.field)
        if sealed is None:
            raise SecretNotFound(
                f"{plan.key} unavailable: field {plan.ref.field!r} not in {plan.ref}"
            )
        with self._sealer.open(sealed, context=_context(plan.ref)) as plain:
            yield plain

    async def _fetch_async(self, plan: KeyPlan) -> Fetched:
        return await anyio.to_thread.run_sync(self._reader.read, plan)

    def _store(self, plan: KeyPlan, fetched: Fetched, *, action: str) -> _Entry:
        now = self._clock()
        source = self._source(plan.ref)
        where = f"{plan.ref.scheme}:{plan.ref.path}"
        keys = self._source_keys(plan.ref)
        owned = Owned(source, tuple(sorted(keys)), plan.ref.scheme, where, fetched.lease)
        owner = self._owners.label(owned)
        for value in fetched.values.values():
            self._redactor.add(value, owner=owner)
        sealed = {
            name: self._sealer.seal(
                value, context=_context(SecretRef(plan.ref.scheme, plan.ref.path, name))
            )
            for name, value in fetched.values.items()
        }
        fetched.values.clear()
        lease = fetched.lease
        previous = self._cache.get(source)
        if lease is not None:
            entry = _Entry(sealed, keys, expires_at=now + lease.ttl, lease=lease)
            entry.renew_at = now + self._renew_delay(lease.ttl)
            action = "issued" if action == "fetched" else action
        else:
            ttl = fetched.ttl if fetched.ttl is not None else self._ttl
            entry = _Entry(sealed, keys, expires_at=now + ttl)
        if previous is not None:
            _carry_leases(previous, entry, now)
        self._cache[self._source(plan.ref)] = entry
        self._event(action, plan, lease=lease, keys=sorted(keys))
        self._wake.set()
        return entry

    def _source_keys(self, ref: SecretRef) -> frozenset[str]:
        """The keys, across modules, that one read of ``ref``'s source serves."""
        plans = (p for module in self._plans.values() for p in module.values())
        source = self._source(ref)
        return frozenset(p.key for p in plans if self._source(p.ref) == source)

    def _renew_delay(self, ttl: float) -> float:
        return max(MIN_SLEEP, ttl * RENEW_FRACTION * random.uniform(0.9, 1.0))  # noqa: S311 - jitter, not crypto

    def _event(self, action: str, plan: KeyPlan, **fields: Any) -> None:
        lease: LeaseInfo | None = fields.pop("lease", None)
        if lease is not None:
            fields.update(
                lease=lease.short_id, lease_ttl=round(lease.ttl, 1), renewable=lease.renewable
            )
        self._emit(
            action,
            # Every key served by the source: a shared lease is renewed and revoked for all of them.
            key=fields.pop("keys", None) or sorted(self._source_keys(plan.ref)),
            backend=plan.ref.scheme,
            source=f"{plan.ref.scheme}:{plan.ref.path}",
            **fields,
        )

    # -- background maintenance --------------------------------------------------------------

    async def maintain(self) -> None:
        """Renew and rotate leases, and let backends renew their own tokens, until cancelled."""
        while True:
            delay = await self.maintain_once()
            self._wake = anyio.Event()
            with anyio.move_on_after(delay):
                await self._wake.wait()

    async def maintain_once(self) -> float:
        """One round of upkeep: the leases due now, then the backends' own; seconds to the next.

        ``maintain`` runs it in a loop; tests drive it with the injected clock.
        """
        now = self._clock()
        self._flag_token_replacements(now)
        due = [e for e in self._cache.values() if e.lease is not None and e.renew_at <= now]
        for entry in due:
            try:
                await self._renew_or_rotate(entry)
            except Exception as exc:  # noqa: BLE001 - a malformed backend answer must not stop serving
                _log.error("lease maintenance failed", extra={"exc_type": type(exc).__name__})
                entry.renew_at = self._clock() + min(5.0, MAX_SLEEP)
        try:
            await self._maintain_backends()
        except Exception as exc:  # noqa: BLE001 - as above, for the backends' own tokens
            _log.error("backend maintenance failed", extra={"exc_type": type(exc).__name__})
        next_due = min(
            (e.renew_at for e in self._cache.values() if e.lease), default=now + MAX_SLEEP
        )
        return min(MAX_SLEEP, max(MIN_SLEEP, next_due - self._clock()))

    def _flag_token_replacements(self, now: float) -> None:
        if not self._token_replaced:
            return
        replaced, self._token_replaced = self._token_replaced, set()
        for entry in self._cache.values():
            if entry.lease is None:
                continue
            backend = self.backend_for(self._plan_for_entry(entry).ref)
            if id(backend) in replaced:
                entry.force_rotate = True
                entry.renew_at = now

    async def _maintain_backends(self) -> None:
        for backend in self._distinct_backends():
            try:
                await anyio.to_thread.run_sync(backend.maintain)
            except CredentialError as exc:
                _log.warning(
                    "backend maintenance failed",
                    extra={"error": self._redactor.scrub(exc.message)},
                )

    async def _renew_or_rotate(self, entry: _Entry) -> None:
        assert entry.lease is not None
        plan = self._plan_for_entry(entry)
        backend = self.backend_for(plan.ref)
        lease = entry.lease
        for old in list(entry.retired):
            await self._revoke(backend, old, plan)
            entry.retired.remove(old)
        if entry.force_rotate:
            entry.force_rotate = False
            await self._rotate(plan, entry, lease)
            return
        renewed: LeaseInfo | None = None
        if lease.renewable:
            try:
                renewed = await anyio.to_thread.run_sync(backend.renew, lease)
            except CredentialError as exc:
                self._event("failed", plan, lease=lease, error=self._redactor.scrub(exc.message))
                if isinstance(exc, BackendUnavailable):
                    entry.renew_at = self._clock() + min(5.0, max(MIN_SLEEP, lease.ttl / 10))
                    return
        now = self._clock()
        if renewed is not None and renewed.ttl >= lease.ttl * 0.5:
            entry.lease = renewed
            entry.expires_at = now + renewed.ttl
            entry.renew_at = now + self._renew_delay(renewed.ttl)
            self._event("renewed", plan, lease=renewed)
            return
        await self._rotate(plan, entry, renewed or lease)

    async def _rotate(self, plan: KeyPlan, entry: _Entry, current: LeaseInfo) -> None:
        try:
            fetched = await self._fetch_async(plan)
        except CredentialError:
            entry.renew_at = self._clock() + min(5.0, max(MIN_SLEEP, current.ttl / 10))
            return
        new = self._store(plan, fetched, action="rotated")
        # The old credential stays valid for in-flight calls until the overlap ends.
        if all(old.lease_id != current.lease_id for old in new.retired):
            new.retired.append(current)
        new.renew_at = min(
            new.renew_at, self._clock() + min(ROTATE_OVERLAP_SECONDS, current.ttl / 2)
        )

    def _plan_for_entry(self, entry: _Entry) -> KeyPlan:
        for module in self._plans.values():
            for plan in module.values():
                if plan.key in entry.keys and self._cache.get(self._source(plan.ref)) is entry:
                    return plan
        raise RuntimeError("cache entry without a plan")

    async def _revoke(self, backend: SecretBackend, lease: LeaseInfo, plan: KeyPlan) -> bool:
        try:
            await anyio.to_thread.run_sync(backend.revoke, lease)
            self._event("revoked", plan, lease=lease)
        except CredentialError as exc:
            self._event("failed", plan, lease=lease, error=self._redactor.scrub(exc.message))
            return False
        return True

    async def withdraw(self, label: str) -> Withdrawn | None:
        """A value released under ``label`` was exposed: revoke its lease now (``exposure.py``).

        An exposed current lease is dropped from the cache, so the next call is issued a new one.
        """
        owned = self._owners.get(label)
        if owned is None or owned.lease is None:
            return None if owned is None else Withdrawn(owned, "rotate")
        lease_id, entry = owned.lease.lease_id, self._cache.get(owned.source)
        if entry is None or entry.lease is None:
            return Withdrawn(owned, "already_revoked")
        plan = self._plan_for_entry(entry)
        backend = self.backend_for(plan.ref)
        if entry.lease.lease_id == lease_id:
            del self._cache[owned.source]
            for old in entry.retired:  # out of the broker's sight once the entry is gone
                await self._revoke(backend, old, plan)
        elif any(old.lease_id == lease_id for old in entry.retired):
            entry.retired = [old for old in entry.retired if old.lease_id != lease_id]
        else:
            return Withdrawn(owned, "already_revoked")
        revoked = await self._revoke(backend, owned.lease, plan)
        return Withdrawn(owned, "revoked" if revoked else "revoke_failed")

    # -- shutdown ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Revoke every lease, then close every backend; bounded to a few seconds in all."""
        with anyio.move_on_after(SHUTDOWN_SECONDS, shield=True):
            for entry in list(self._cache.values()):
                leases = [*entry.retired, *([entry.lease] if entry.lease else [])]
                if not leases:
                    continue
                plan = self._plan_for_entry(entry)
                backend = self.backend_for(plan.ref)
                for lease in leases:
                    await self._revoke(backend, lease, plan)
            self._cache.clear()
            for backend in self._distinct_backends():
                try:
                    await anyio.to_thread.run_sync(backend.close)
                except CredentialError as exc:
                    error = self._redactor.scrub(exc.message)
                    _log.warning("backend close failed", extra={"error": error})
                    scheme = backend.schemes[0] if backend.schemes else type(backend).__name__
                    self._emit("failed", backend=scheme, status=exc.status, error=error)
