"""The server's OAuth access token for one upstream: a leased secret, sealed in memory.

Invariants:

- The access token is held sealed (``Sealer``, AES-GCM under a per-process key) and opened only
  to build one request's header. Every token and client secret read from the store or the token
  endpoint is registered with the redactor before anything else happens.
- It is replaced at about two thirds of its lifetime, and once when the upstream answers 401.
  Each replacement is one read-modify-write of the store under its lock: a newer access token
  another process stored is adopted as is; otherwise the stored refresh token is used and the
  rotated one written back before the lock is released. Two processes of one agent type sharing
  a store therefore never spend the same refresh token twice, and never lose a rotation.
- A refresh the authorization server refuses marks the grant expired: calls fail with
  ``upstream authorization expired: run `scoped-mcp auth login ...```, and the store is read
  again on later calls (no request is sent with a refused refresh token twice), so a new login
  heals a running server. Nothing here ever starts an interactive flow.
- A refresh that fails for want of the server (unreachable, 5xx) keeps using the current token
  until it expires.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread

from scoped_mcp.credentials.lease import SealedSecret, Sealer, wipe
from scoped_mcp.errors import BackendError, CredentialError
from scoped_mcp.oauth.config import OAuthConfig
from scoped_mcp.oauth.grant import Grant, digest
from scoped_mcp.oauth.refresh import GrantRefused, refresh
from scoped_mcp.oauth.store import GrantStore, StoreConflict

_log = logging.getLogger(__name__)
SecretReader = Callable[[], Awaitable[str | None]]


class UpstreamAuthExpired(BackendError):
    """The stored grant is gone or refused: only the operator's ``auth login`` can fix it."""


class TokenSource:
    """Hands out the current access token for one upstream as a request header."""

    def __init__(
        self,
        *,
        store: GrantStore,
        config: OAuthConfig,
        protect: Callable[[str], None],
        client_secret: SecretReader | None = None,
        record: Callable[..., None] | None = None,
        label: str = "mcp_proxy",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._config = config
        self._protect = protect
        self._client_secret = client_secret
        self._record = record or (lambda *a, **k: None)
        self._label = label
        self._clock = clock
        self._sealer = Sealer()
        self._sealed: SealedSecret | None = None
        self._digest = ""
        self._refresh_at: float | None = None
        self._expires_at: float | None = None
        self._refused: str | None = None  # digest of the refresh token the server refused
        self._rejected: set[str] = set()  # digests of access tokens the upstream answered 401 to
        self._lock = anyio.Lock()
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"TokenSource({self._store.describe()!r}, <sealed>)"

    @property
    def expired_message(self) -> str | None:
        """The message calls answer while the grant is refused, else None."""
        if self._refused is None:
            return None
        return f"upstream authorization expired: run `{self._config.login_command()}`"

    async def close(self) -> None:
        """Release the store (a Vault store revokes its token)."""
        await anyio.to_thread.run_sync(self._store.close)

    def _due(self, now: float) -> bool:
        if self._sealed is None or self._refused is not None:
            return True
        return self._refresh_at is not None and now >= self._refresh_at

    def _usable(self, now: float) -> bool:
        if self._sealed is None:
            return False
        return self._expires_at is None or now < self._expires_at

    async def header(self) -> tuple[bytes, str]:
        """``Bearer <token>`` for one request and the token's digest; refreshes when due.

        Raises ``UpstreamAuthExpired`` or ``BackendError`` when there is no token to send.
        """
        if self._due(self._clock()):
            async with self._lock:
                if self._due(self._clock()):
                    await self._replace(rejected=None)
        assert self._sealed is not None
        with self._sealer.open(self._sealed, context=b"oauth-access") as plain:
            view = plain.bytes_view
            buffer = bytearray(b"Bearer ") + view
            try:
                return bytes(buffer), self._digest
            finally:
                wipe(buffer)

    async def unauthorized(self, used: str) -> None:
        """The upstream answered 401 to the token named by ``used``: replace it once."""
        async with self._lock:
            self._rejected.add(used)
            if used == self._digest and self._refused is None:
                self._sealed = None  # the upstream said it is no good
                await self._replace(rejected=used)

    async def _replace(self, *, rejected: str | None) -> None:
        secret = await self._client_secret() if self._client_secret is not None else None
        try:
            grant = await anyio.to_thread.run_sync(self._locked_replace, secret)
        except GrantRefused:
            self._sealed = None
            raise UpstreamAuthExpired(
                self.expired_message or "upstream authorization expired"
            ) from None
        except CredentialError as exc:
            if self._usable(self._clock()) and rejected is None:
                _log.warning(
                    "oauth refresh failed; the current access token is still valid",
                    extra={"proxy": self._label, "error": exc.message},
                )
                return
            raise BackendError(
                f"upstream authorization could not be refreshed: {exc.message}"
            ) from None
        self._adopt(grant)

    def _locked_replace(self, secret: str | None) -> Grant:
        with self._store.locked():
            grant = self._store.read()
            if grant is None:
                self._refused = "absent"
                self._event("failed", status="missing", error="no OAuth grant is stored")
                raise GrantRefused("no grant is stored")
            for value in grant.secrets():
                self._protect(value)
            stored = digest(grant.access_token)
            if grant.fresh(self._clock()) and stored and stored not in self._rejected:
                if self._digest and stored != self._digest:  # another process's rotation
                    _log.info(
                        "oauth access token taken from the store", extra={"proxy": self._label}
                    )
                return grant
            if self._refused is not None and digest(grant.refresh_token) == self._refused:
                raise GrantRefused("the stored refresh token was refused before")
            return self._refresh_and_store(grant, secret)

    def _refresh_and_store(self, grant: Grant, secret: str | None) -> Grant:
        """Spend the stored refresh token and write the rotation back (the lock is held)."""
        try:
            new = refresh(grant, client_secret=secret)
        except GrantRefused:
            # Another process may have spent this refresh token a moment ago (a store without
            # a lock, such as Vault's check-and-set): take its rotation if so.
            newer = self._store.read()
            if newer is not None and digest(newer.refresh_token) != digest(grant.refresh_token):
                for value in newer.secrets():
                    self._protect(value)
                if newer.access_token and digest(newer.access_token) not in self._rejected:
                    return newer
            self._refused = digest(grant.refresh_token) or "absent"
            _log.warning("oauth refresh refused", extra={"proxy": self._label})
            self._event("failed", status="denied", error="the refresh was refused")
            raise
        for value in new.secrets():
            self._protect(value)
        rotated = new.refresh_token != grant.refresh_token
        try:
            self._store.write(new)
        except StoreConflict:
            # Another process stored its rotation first: the store keeps that one, which every
            # process reads next; this process uses its own, equally valid, token meanwhile.
            _log.info("oauth grant stored by another process first", extra={"proxy": self._label})
            return new
        self.refreshes += 1
        self._event("rotated", rotated=rotated)
        lifetime = None if new.expires_at is None else round(new.expires_at - new.issued_at)
        _log.info(
            "oauth access token refreshed",
            extra={"proxy": self._label, "expires_in": lifetime, "rotated": rotated},
        )
        return new

    def _event(self, action: str, **fields: Any) -> None:
        self._record(
            action,
            key=[f"{self._label}:oauth"],
            backend="oauth",
            source=self._store.describe(),
            **fields,
        )

    def _adopt(self, grant: Grant) -> None:
        assert grant.access_token is not None
        self._sealed = self._sealer.seal(grant.access_token, context=b"oauth-access")
        self._digest = digest(grant.access_token)
        self._refresh_at = grant.refresh_at
        self._expires_at = grant.expires_at
        self._refused = None
