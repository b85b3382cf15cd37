"""The secret-backend interface: one small class per backend, synchronous, found by name.

Backends are synchronous (hvac, keyring and file reads are); the broker calls them off the event
loop. A backend never logs, returns or raises with a secret value in it.

Built-in schemes: ``env``, ``file``, ``keyring``, ``vault`` and ``vault-dynamic`` (one Vault
backend serves both). Third-party backends register a class in the ``scoped_mcp.secret_backends``
entry-point group under their scheme; a contract test suite (tests/contracts/secret_backend.py)
proves one with a single subclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from scoped_mcp.credentials.lease import LeaseInfo
from scoped_mcp.credentials.refs import SecretRef

Status = Literal["ok", "missing", "denied", "unreachable", "insecure", "broken"]


@dataclass(slots=True, repr=False)
class Fetched:
    """What one read of a source returned: every field of it, and its lease if it has one.

    ``values`` maps field name to value; a source with a single value (``env:NAME``) uses the key
    ``None``. The broker seals the values and drops this object at once.
    """

    values: dict[str | None, str]
    lease: LeaseInfo | None = None
    ttl: float | None = None

    def __repr__(self) -> str:
        return f"Fetched(fields={sorted(str(k) for k in self.values)}, lease={self.lease!r})"


@dataclass(slots=True)
class Finding:
    """The result of checking one reference without keeping its value."""

    status: Status
    detail: str = ""
    fix: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class SecretBackend(Protocol):
    """Reads secrets from one kind of store."""

    schemes: ClassVar[tuple[str, ...]]

    def fetch(self, ref: SecretRef) -> Fetched:
        """Read the source ``ref`` points at; raise a ``CredentialError`` subclass on failure."""
        ...

    def check(self, ref: SecretRef) -> Finding:
        """Say whether ``ref`` is usable, without issuing a lease or keeping the value."""
        ...

    def renew(self, lease: LeaseInfo) -> LeaseInfo:
        """Extend a lease; return it with the new TTL. Static backends raise NotImplementedError."""
        ...

    def revoke(self, lease: LeaseInfo) -> None:
        """End a lease now."""
        ...

    def close(self) -> None:
        """Release what the backend holds (for Vault: revoke its own token)."""
        ...


class StaticBackend:
    """Base for backends whose values have no lease: renew and revoke do not apply."""

    schemes: ClassVar[tuple[str, ...]] = ()

    def renew(self, lease: LeaseInfo) -> LeaseInfo:
        raise NotImplementedError(f"{type(self).__name__} values have no lease")

    def revoke(self, lease: LeaseInfo) -> None:
        raise NotImplementedError(f"{type(self).__name__} values have no lease")

    def close(self) -> None:
        return None
