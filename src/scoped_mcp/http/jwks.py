"""The issuer's signing keys (JWKS), fetched over HTTP, cached, refreshed on a bounded schedule.

Keys are looked up by the token's ``kid``. A known key is served from the cache for
``MAX_AGE`` seconds; an unknown ``kid`` (the issuer rotated its keys) re-fetches the set, but at
most once per ``refresh_seconds``, so tokens with made-up key ids cannot make this server hammer
the issuer. Without ``jwks_url`` the set's address is discovered from the issuer's metadata
(RFC 8414 ``/.well-known/oauth-authorization-server``, then OpenID ``openid-configuration``),
whose ``issuer`` must be the configured one and whose ``jwks_uri`` must be https (or http to a
loopback address), as the manifest's own URLs must. Responses are bounded in size and time; no proxy
from the environment is used and no redirect followed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx

from scoped_mcp.net.loopback import https_or_loopback

MAX_AGE = 3600.0
MAX_BYTES = 64 * 1024
TIMEOUT = 5.0


class JwksUnavailable(Exception):
    """The issuer's keys could not be fetched (nothing cached to fall back on)."""


class UnknownKey(Exception):
    """The token names a key the issuer's current set does not hold."""


def metadata_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata may be: RFC 8414's path-inserted form, then OpenID's."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    rfc8414 = urlunsplit(
        (parts.scheme, parts.netloc, f"/.well-known/oauth-authorization-server{path}", "", "")
    )
    openid = urlunsplit(
        (parts.scheme, parts.netloc, f"{path}/.well-known/openid-configuration", "", "")
    )
    return [rfc8414, openid]


class JwksCache:
    """The JWKS of one issuer, by key id."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks_url: str | None,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuer = issuer
        self._jwks_url = jwks_url
        self._refresh = refresh_seconds
        self._clock = clock
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = anyio.Lock()
        self.fetches = 0

    async def key(self, kid: str | None) -> dict[str, Any]:
        """The JWK for ``kid`` (a token without one: the set's only key)."""
        found = self._lookup(kid)
        if found is not None and not self._stale():
            return found
        async with self._lock:
            found = self._lookup(kid)
            if found is not None and not self._stale():
                return found
            if self._may_refresh():
                await self._refresh_keys(keep_old=found is not None or bool(self._keys))
            found = self._lookup(kid)
        if found is None:
            if self._fetched_at is None:
                raise JwksUnavailable
            raise UnknownKey
        return found

    def _lookup(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None:
            keys = list(self._keys.values())
            return keys[0] if len(keys) == 1 else None
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= MAX_AGE

    def _may_refresh(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self._refresh

    async def _refresh_keys(self, *, keep_old: bool) -> None:
        self._attempted_at = self._clock()
        try:
            async with httpx.AsyncClient(
                timeout=TIMEOUT, trust_env=False, follow_redirects=False
            ) as client:
                url = self._jwks_url or await self._discover(client)
                document = await _get_json(client, url)
        except (httpx.HTTPError, ValueError, JwksUnavailable):
            if not keep_old:
                raise JwksUnavailable from None
            return
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            if not keep_old:
                raise JwksUnavailable
            return
        self._keys = {
            key.get("kid") if isinstance(key.get("kid"), str) else None: key
            for key in keys
            if isinstance(key, dict)
        }
        self._fetched_at = self._clock()
        self.fetches += 1

    async def _discover(self, client: httpx.AsyncClient) -> str:
        for url in metadata_urls(self._issuer):
            try:
                document = await _get_json(client, url)
            except (httpx.HTTPError, ValueError):
                continue
            if not isinstance(document, dict) or document.get("issuer") != self._issuer:
                continue  # RFC 8414 section 3.3: metadata for another issuer is not this one's
            jwks_uri = document.get("jwks_uri")
            if isinstance(jwks_uri, str) and https_or_loopback(jwks_uri):
                self._jwks_url = jwks_uri
                return jwks_uri
        raise JwksUnavailable


async def _get_json(client: httpx.AsyncClient, url: str) -> Any:
    """A JSON document from ``url``: 200, at most ``MAX_BYTES``; else ``ValueError``."""
    async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
        if response.status_code != 200:
            raise ValueError("not 200")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_BYTES:
                raise ValueError("too large")
    return json.loads(bytes(body))
