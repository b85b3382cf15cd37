"""The answer to a leak: a released value found in something bound for the agent.

Redaction has already replaced the value, so the agent never saw it; but whatever produced it (an
upstream that echoes its credential, a module that returns it) holds it in a place it should not
be. For every value found, ``ExposureResponder``:

- writes a ``credential_exposed`` audit record naming the keys, backend, source and the tool whose
  answer held it (never the value);
- for a dynamic secret, revokes that lease at once (``CredentialBroker.withdraw``): the cache
  forgets it, so the next call is issued a fresh one;
- for a static one, logs which key to rotate where (``scoped-mcp creds check --audit FILE`` lists
  them again later).

``Ownership`` is how a matched value is traced back: the broker registers each released value with
the redactor under a label of its own, one per cache entry, and keeps what the label stands for.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import anyio

from scoped_mcp.audit import records
from scoped_mcp.credentials.lease import LeaseInfo
from scoped_mcp.errors import AuditUnavailable

if TYPE_CHECKING:
    from scoped_mcp.audit.log import AuditLog
    from scoped_mcp.credentials.broker import CredentialBroker
    from scoped_mcp.pipeline import Binding

_log = logging.getLogger(__name__)
RESPOND_SECONDS = 10.0
"""At most this long is spent revoking exposed leases before the call's answer goes out."""
Remedy = Literal["revoked", "revoke_failed", "already_revoked", "rotate"]


@dataclass(frozen=True, slots=True)
class Owned:
    """What one redaction label stands for: a source's keys, and the lease of that read."""

    source: tuple[str, str]
    keys: tuple[str, ...]
    backend: str
    where: str
    lease: LeaseInfo | None

    def __repr__(self) -> str:
        return f"Owned({self.where}, keys={list(self.keys)}, lease={self.lease!r})"


class Ownership:
    """Labels for the values one broker releases; a label names no key and no value."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._owned: dict[str, Owned] = {}
        self._static: dict[Owned, str] = {}

    def __repr__(self) -> str:
        return f"Ownership(<{len(self._owned)} labels>)"

    def label(self, owned: Owned) -> str:
        """A label for one read's values: fresh per lease; one per source for static values,
        which are read again every TTL (so the labels do not grow with the process's age)."""
        if owned.lease is None and owned in self._static:
            return self._static[owned]
        name = f"o{next(self._counter)}"
        self._owned[name] = owned
        if owned.lease is None:
            self._static[owned] = name
        return name

    def get(self, label: str) -> Owned | None:
        return self._owned.get(label)


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """What the broker did about one exposed label."""

    owned: Owned
    remedy: Remedy


class ExposureResponder:
    """The pipeline's ``on_exposed`` hook: records, revokes, and says what to rotate."""

    def __init__(self, broker: CredentialBroker, audit: AuditLog) -> None:
        self._broker = broker
        self._audit = audit

    def __repr__(self) -> str:
        return "ExposureResponder()"

    async def __call__(self, labels: frozenset[str], binding: Binding) -> None:
        """Answer every label found in one call's result or error (bounded in time)."""
        with anyio.move_on_after(RESPOND_SECONDS, shield=True):
            for label in sorted(labels):
                try:
                    withdrawn = await self._broker.withdraw(label)
                except Exception as exc:  # noqa: BLE001 - the call's answer must still go out
                    _log.error("exposure response failed", extra={"exc_type": type(exc).__name__})
                    continue
                if withdrawn is not None:
                    self._record(withdrawn, binding)

    def _record(self, withdrawn: Withdrawn, binding: Binding) -> None:
        owned = withdrawn.owned
        if withdrawn.remedy == "rotate":
            _log.warning(
                "a credential reached a tool's answer (scrubbed): rotate it in its backend",
                extra={
                    "key": list(owned.keys),
                    "backend": owned.backend,
                    "source": owned.where,
                    "tool": binding.tool_name,
                },
            )
        else:
            _log.warning(
                "a leased credential reached a tool's answer (scrubbed): lease revoked, the next "
                "call gets a fresh one",
                extra={"key": list(owned.keys), "source": owned.where, "remedy": withdrawn.remedy},
            )
        try:
            self._audit.write(
                records.credential_exposed(
                    key=list(owned.keys),
                    backend=owned.backend,
                    source=owned.where,
                    module=binding.module_key,
                    tool=binding.tool_name,
                    dynamic=owned.lease is not None,
                    remedy=withdrawn.remedy,
                    lease=owned.lease.short_id if owned.lease is not None else None,
                )
            )
        except AuditUnavailable as exc:
            # The call's own record fails the same way and withholds its answer.
            _log.error("credential_exposed not recorded", extra={"reason": exc.reason})
