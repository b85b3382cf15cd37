"""The short leash: a dynamic lease is held to ``credentials.vault.lease_ttl`` from the start.

Vault's database roles (and most engines) issue a lease for the role's ``default_ttl``, often an
hour; the issue request cannot ask for less. Renewing at once with ``increment = lease_ttl`` moves
the lease's end (and, for PostgreSQL, the role's ``VALID UNTIL``) to ``lease_ttl`` from now, and
the broker's renewals keep that increment, so a server killed without revoking its leases leaves
each one usable for at most ``lease_ttl`` after its last renewal. A lease that cannot be
shortened (not renewable, or renewal refused by policy) is kept as issued and logged once per
path; ``creds check`` names the role or policy line that fixes it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scoped_mcp.credentials.lease import LeaseInfo
from scoped_mcp.errors import CredentialError

if TYPE_CHECKING:
    from scoped_mcp.credentials.backends.vault import VaultBackend

_log = logging.getLogger("scoped_mcp.credentials.backends.vault")


def short_lease(backend: VaultBackend, lease: LeaseInfo) -> LeaseInfo:
    """``lease``, renewed down to ``lease_ttl`` when it was issued for longer."""
    limit = backend.lease_ttl
    if lease.ttl <= limit:
        return lease
    path = lease.lease_id.rpartition("/")[0]
    if not lease.renewable:
        backend.warn_once(
            path,
            "a dynamic lease is not renewable, so it cannot be held to lease_ttl: it stays "
            "usable after a crash for its whole TTL",
            ttl_s=round(lease.ttl),
        )
        return lease
    try:
        shorter = backend.renew(lease, increment=limit)
    except CredentialError:
        backend.warn_once(
            path,
            "could not shorten a dynamic lease to lease_ttl (renewal refused): it stays usable "
            "after a crash for its whole TTL",
            ttl_s=round(lease.ttl),
        )
        return lease
    if shorter.ttl <= 0:
        return lease
    return shorter


def warn(path: str, message: str, **extra: object) -> None:
    """One ops-log warning about a lease path (never a lease id or value)."""
    _log.warning(message, extra={"path": path, **extra})
