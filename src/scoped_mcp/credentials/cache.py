"""The broker's cache entries: one fetched source, sealed, with its lease and retired leases."""

from __future__ import annotations

from dataclasses import dataclass, field

from scoped_mcp.credentials.lease import LeaseInfo, SealedSecret


@dataclass(slots=True, repr=False)
class Entry:
    """One fetched source: its sealed fields, and when it must be read again."""

    fields: dict[str | None, SealedSecret]
    keys: frozenset[str]
    expires_at: float
    lease: LeaseInfo | None = None
    renew_at: float = float("inf")
    retired: list[LeaseInfo] = field(default_factory=list)
    force_rotate: bool = False

    def live(self, now: float) -> bool:
        return now < self.expires_at


def carry_leases(previous: Entry, entry: Entry, now: float) -> None:
    """Keep the leases of a cache entry being replaced, to be revoked with ``entry``'s retired.

    Two reads of one source can overlap (a seed-style ``credentials[KEY]`` beside an async
    ``use``, a rotation beside a call that found the entry expired); each issues a lease, and the
    entry the cache drops must not take a live one out of the broker's sight.
    """
    carried = [*previous.retired]
    if previous.lease is not None and previous.live(now):
        carried.append(previous.lease)
    held = {lease.lease_id for lease in entry.retired}
    if entry.lease is not None:
        held.add(entry.lease.lease_id)
    entry.retired.extend(lease for lease in carried if lease.lease_id not in held)
