"""The requests of one server: pending, approved, denied, expired or spent, each bound to one call.

A request is bound to ``{agent_id, tool, argument digest, expiry}``. An approved request is spent
by exactly one call (``spend``); a call with other arguments has another digest and never finds
it. Requests live in memory only: a restarted server has none, so nothing approved survives it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import anyio

from scoped_mcp.approvals.rules import EffectiveRule

State = Literal["pending", "approved", "denied", "expired", "spent"]
MAX_OPEN = 64
"""Requests pending or approved at once; more are refused, so an agent cannot flood approvers."""
KEEP_CLOSED_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Binding:
    """What an approval is bound to: the agent, the tool and the argument digest."""

    agent_id: str
    tool: str
    digest: str


@dataclass(slots=True, repr=False)
class Request:
    """One approval request and what became of it."""

    id: str
    binding: Binding
    module: str
    mode: str
    args: dict[str, Any]
    rendering: str
    rule: EffectiveRule
    created_at: str
    expires_at: float
    state: State = "pending"
    channel: str | None = None
    approver: str | None = None
    reason: str | None = None
    closed_at: float | None = None
    changed: anyio.Event = field(default_factory=anyio.Event)

    def __repr__(self) -> str:
        return f"Request({self.id!r}, {self.binding.tool!r}, {self.state})"

    def summary(self, now: float) -> dict[str, Any]:
        """What the control socket shows of it: no value beyond the scrubbed rendering."""
        return {
            "id": self.id,
            "agent_id": self.binding.agent_id,
            "tool": self.binding.tool,
            "module": self.module,
            "mode": self.mode,
            "state": self.state,
            "arguments": self.rendering,
            "sha256": self.binding.digest,
            "created_at": self.created_at,
            "expires_in": max(0.0, round(self.expires_at - now, 1)),
            "approve_with_cli": self.rule.approvers.cli,
            "channel": self.channel,
            "approver": self.approver,
            "reason": self.reason,
        }

    def settle(self, state: State, now: float) -> None:
        self.state = state
        self.closed_at = now
        self.changed.set()


class Store:
    """Every request of this server, by id."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._requests: dict[str, Request] = {}

    def __repr__(self) -> str:
        return f"Store(<{len(self._requests)} requests>)"

    def now(self) -> float:
        return self._clock()

    def __iter__(self) -> Iterator[Request]:
        return iter(list(self._requests.values()))

    def get(self, request_id: str) -> Request | None:
        return self._requests.get(request_id)

    def find(self, binding: Binding) -> Request | None:
        """The newest request for this call that still means something: pending, approved
        (unspent) or denied, within its lifetime."""
        now = self._clock()
        found = [
            r
            for r in self._requests.values()
            if r.binding == binding
            and r.state in ("pending", "approved", "denied")
            and now < r.expires_at
        ]
        return found[-1] if found else None

    def open_count(self) -> int:
        return sum(1 for r in self._requests.values() if r.state in ("pending", "approved"))

    def create(
        self,
        binding: Binding,
        *,
        module: str,
        mode: str,
        args: dict[str, Any],
        rendering: str,
        rule: EffectiveRule,
    ) -> Request:
        """A new pending request with a random id."""
        self._forget_old()
        request_id = secrets.token_hex(5)
        while request_id in self._requests:
            request_id = secrets.token_hex(5)
        request = Request(
            id=request_id,
            binding=binding,
            module=module,
            mode=mode,
            args=args,
            rendering=rendering,
            rule=rule,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            expires_at=self._clock() + rule.lifetime,
        )
        self._requests[request_id] = request
        return request

    def spend(self, request: Request) -> bool:
        """Use an approved request for one call; False if it is not approved (any more)."""
        if request.state != "approved" or self._clock() >= request.expires_at:
            return False
        request.settle("spent", self._clock())
        return True

    def due_to_expire(self) -> list[Request]:
        """Pending or approved requests past their expiry (not yet marked)."""
        now = self._clock()
        return [
            r
            for r in self._requests.values()
            if r.state in ("pending", "approved") and now >= r.expires_at
        ]

    def _forget_old(self) -> None:
        now = self._clock()
        for request_id, request in list(self._requests.items()):
            if request.closed_at is not None and now - request.closed_at > KEEP_CLOSED_SECONDS:
                del self._requests[request_id]
