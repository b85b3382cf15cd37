"""Per-call leases: keys whose values are read fresh for one call and given back when it returns.

The approval gate marks the keys that only approval-gated tools use (``broker.lease_per_call``)
and runs each approved call inside ``broker.call_leases()``. Inside that scope a marked key is
read from its backend the first time the call needs it (one read per source, as in the cache),
sealed, served for the rest of the call and never cached; when the call returns, every lease it
took is revoked (shielded from cancellation, audited as ``revoked``). Outside a scope a marked key
cannot be read at all, so nothing reads it at start-up or for an unapproved call.

Per-call leases are not renewed: a call that outlives its lease's TTL loses the credential.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from scoped_mcp.errors import CredentialError

if TYPE_CHECKING:
    from scoped_mcp.credentials.backends.interface import Fetched
    from scoped_mcp.credentials.broker import CredentialBroker
    from scoped_mcp.credentials.cache import Entry as _Entry
    from scoped_mcp.credentials.plan import KeyPlan


@dataclass(slots=True, repr=False)
class CallScope:
    """The sources one call has read, and their plans (for revocation)."""

    entries: dict[tuple[str, str], tuple[_Entry, KeyPlan]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"CallScope(<{len(self.entries)} sources>)"


_SCOPE: ContextVar[CallScope | None] = ContextVar("scoped_mcp_call_leases", default=None)


def _scope_for(plan: KeyPlan) -> CallScope:
    scope = _SCOPE.get()
    if scope is None:
        raise CredentialError(
            f"{plan.key} is leased per approved call (every tool of module {plan.module!r} is "
            "under an approval rule) and cannot be read outside one, e.g. at start-up",
            fix="a module that needs its credential before any call cannot have all its tools "
            "gated: leave one ungated, or give the key to a module that reads it per call",
        )
    return scope


def cached(broker: CredentialBroker, plan: KeyPlan) -> _Entry | None:
    """The entry this call already holds for the plan's source, if any."""
    found = _scope_for(plan).entries.get(broker._source(plan.ref))
    return found[0] if found is not None else None


def keep(broker: CredentialBroker, plan: KeyPlan, fetched: Fetched) -> _Entry:
    """Seal a fresh read into the call's scope (never into the broker's cache)."""
    entry = _seal(broker, plan, fetched)
    _scope_for(plan).entries[broker._source(plan.ref)] = (entry, plan)
    broker._event(
        "issued" if entry.lease is not None else "fetched", plan, lease=entry.lease, per_call=True
    )
    return entry


def _seal(broker: CredentialBroker, plan: KeyPlan, fetched: Fetched) -> _Entry:
    """The values sealed as the broker seals them, each registered with the redactor."""
    from scoped_mcp.credentials.broker import _context
    from scoped_mcp.credentials.cache import Entry as _Entry
    from scoped_mcp.credentials.refs import SecretRef

    for value in fetched.values.values():
        broker._redactor.add(value)
    sealed = {
        name: broker._sealer.seal(
            value, context=_context(SecretRef(plan.ref.scheme, plan.ref.path, name))
        )
        for name, value in fetched.values.items()
    }
    fetched.values.clear()
    return _Entry(sealed, frozenset({plan.key}), expires_at=float("inf"), lease=fetched.lease)


@asynccontextmanager
async def call_leases(broker: CredentialBroker) -> AsyncIterator[None]:
    """The scope of one call: its per-call reads are revoked (or dropped) when it ends."""
    scope = CallScope()
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)
        with anyio.CancelScope(shield=True):
            for entry, plan in scope.entries.values():
                if entry.lease is not None:
                    await broker._revoke(broker.backend_for(plan.ref), entry.lease, plan)
            scope.entries.clear()
