"""The nodes of a Vault/OpenBao cluster, and which one the broker talks to.

``credentials.vault.addr`` may list several node addresses. Requests go to one node at a time
(the current one) and stay there while it serves. When it cannot (connection refused or timed
out, sealed, a standby that cannot reach the active node, an election in progress: every
``BackendUnavailable``), the request moves on to the next node in the list, wrapping around to
the first, and an ops-log line says so. A standby that redirects (HTTP 307, when it does not
forward) is followed only to a node of the list, never to another address: the request carries
the broker's token. Every request, renewals and revocations included, takes this path, so they
follow the cluster's active node.

The retry is bounded: each node is tried at most ``rounds`` times per request (2 for a cluster,
with a short pause between rounds, 1 for a single address, which behaves as it always did).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

from scoped_mcp.errors import BackendUnavailable

_log = logging.getLogger("scoped_mcp.credentials.backends.vault")
T = TypeVar("T")
ROUND_PAUSE_SECONDS = 0.5
MAX_REDIRECTS = 2


class Redirected(Exception):
    """A node answered with a redirect to ``location`` instead of serving the request."""

    def __init__(self, node: str, location: str) -> None:
        super().__init__(node)
        self.node = node
        self.location = location


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of an address, for comparing a redirect target with the nodes."""
    parts = urlsplit(url.strip())
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class NodeRing:
    """The configured nodes and the current one; thread-safe."""

    def __init__(
        self,
        nodes: Sequence[str],
        *,
        pause: float = ROUND_PAUSE_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not nodes:
            raise ValueError("a vault cluster needs at least one node address")
        self._nodes = [node.rstrip("/") for node in nodes]
        self._index = 0
        self._lock = threading.Lock()
        self._pause = pause
        self._sleep = sleep
        self.rounds = 1 if len(self._nodes) == 1 else 2

    def __repr__(self) -> str:
        return f"NodeRing({self._nodes!r}, current={self.current!r})"

    @property
    def nodes(self) -> list[str]:
        return list(self._nodes)

    @property
    def current(self) -> str:
        with self._lock:
            return self._nodes[self._index]

    def run(self, send: Callable[[str], T]) -> T:
        """``send(node)`` on the current node, moving along the ring until one serves."""
        failure: BackendUnavailable | None = None
        redirects = 0
        for round_number in range(self.rounds):
            if round_number:
                self._sleep(self._pause)
            order = self._order()
            while order:
                node = order.pop(0)
                try:
                    result = send(node)
                except Redirected as moved:
                    target = self._known(moved.location)
                    redirects += 1
                    if target is None or redirects > MAX_REDIRECTS:
                        raise BackendUnavailable(
                            f"vault at {node} redirected to an address not in "
                            "credentials.vault.addr; not followed (it would carry the token)",
                            fix="list every node's api_addr in credentials.vault.addr",
                        ) from None
                    self._note(node, target, "redirected to the active node")
                    order = [target, *[n for n in order if n != target]]
                    continue
                except BackendUnavailable as exc:
                    failure = exc
                    if len(self._nodes) > 1:
                        following = order[0] if order else self._after(node)
                        self._note(node, following, exc.message)
                    continue
                self._settle(node)
                return result
        assert failure is not None
        raise failure

    def _order(self) -> list[str]:
        with self._lock:
            start = self._index
        count = len(self._nodes)
        return [self._nodes[(start + step) % count] for step in range(count)]

    def _after(self, node: str) -> str:
        return self._nodes[(self._nodes.index(node) + 1) % len(self._nodes)]

    def _known(self, location: str) -> str | None:
        wanted = origin(location)
        return next((node for node in self._nodes if origin(node) == wanted), None)

    def _note(self, node: str, following: str, reason: str) -> None:
        _log.warning(
            "vault node cannot serve; trying the next",
            extra={"node": node, "next": following, "reason": reason},
        )

    def _settle(self, node: str) -> None:
        with self._lock:
            index = self._nodes.index(node)
            if index == self._index:
                return
            previous, self._index = self._nodes[self._index], index
        _log.warning("vault requests now go to another node", extra={"node": node, "was": previous})
