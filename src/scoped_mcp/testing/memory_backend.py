"""An in-memory secret backend with leases: a real implementation of the interface for tests.

Static sources are plain dicts; a path in ``dynamic`` issues a numbered lease on every fetch
(values suffixed with the lease id), renewable by ``lease_ttl`` up to ``max_ttl`` in all. Set
``down`` to make every call fail as an unreachable backend would.
"""

from __future__ import annotations

import itertools
import threading
from typing import ClassVar

from scoped_mcp.credentials.backends.interface import EventSink, Fetched, Finding, SecretBackend
from scoped_mcp.credentials.lease import LeaseInfo
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import BackendUnavailable, SecretNotFound


class MemoryBackend(SecretBackend):
    """Holds sources as dicts; ``dynamic`` paths issue numbered leases with a TTL and max TTL."""

    schemes: ClassVar[tuple[str, ...]] = ("mem",)

    def __init__(self, *, lease_ttl: float = 1.0, max_ttl: float = 100.0) -> None:
        self.sources: dict[str, dict[str, str]] = {}
        self.dynamic: set[str] = set()
        self.lease_ttl = lease_ttl
        self.max_ttl = max_ttl
        self.down = False
        self.fetches = 0
        self.renewals = 0
        self.revoked: list[str] = []
        self.closed = False
        self._issued: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.sink: EventSink = lambda *a, **k: None

    def __repr__(self) -> str:
        return f"MemoryBackend(<{len(self.sources)} sources>)"

    def _up(self) -> None:
        if self.down:
            raise BackendUnavailable("memory backend unreachable")

    def fetch(self, ref: SecretRef) -> Fetched:
        with self._lock:
            self._up()
            self.fetches += 1
            source = self.sources.get(ref.path)
            if source is None or ref.field not in source:
                raise SecretNotFound(f"{ref.path}#{ref.field} not found")
            if ref.path not in self.dynamic:
                return Fetched(dict(source))  # type: ignore[arg-type]
            lease_id = f"{ref.path}/{next(self._ids)}"
            self._issued[lease_id] = 0.0
            values = {k: f"{v}-{lease_id}" for k, v in source.items()}
            return Fetched(values, lease=LeaseInfo(lease_id, ttl=self.lease_ttl, renewable=True))  # type: ignore[arg-type]

    def check(self, ref: SecretRef) -> Finding:
        if self.down:
            return Finding("unreachable", "memory backend down")
        source = self.sources.get(ref.path)
        return Finding("ok") if source and ref.field in source else Finding("missing")

    def renew(self, lease: LeaseInfo) -> LeaseInfo:
        with self._lock:
            self._up()
            self.renewals += 1
            if lease.lease_id in self.revoked:
                raise SecretNotFound(f"lease {lease.lease_id} was revoked")
            used = self._issued.get(lease.lease_id, 0.0) + lease.ttl
            self._issued[lease.lease_id] = used
            ttl = max(0.0, min(self.lease_ttl, self.max_ttl - used))
            return LeaseInfo(lease.lease_id, ttl=ttl, renewable=True)

    def revoke(self, lease: LeaseInfo) -> None:
        with self._lock:
            self._up()
            self.revoked.append(lease.lease_id)

    def close(self) -> None:
        self.closed = True

    def attach_events(self, sink: EventSink) -> None:
        """Keep the broker's sink, so a test can send backend events (a token re-login)."""
        self.sink = sink
