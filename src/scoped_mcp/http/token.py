"""The HTTP bearer token: a credential the broker holds sealed, checked in constant time.

The token is planned like any module key, under the pseudo-module ``serve.http`` (a name no
module can take: module names have no dot), so the preflight proves it, the broker seals and
re-reads it on the credential TTL, and the redactor scrubs it wherever it might be echoed. When a
re-read finds a new value, the previous one stays valid for ``overlap`` seconds so an agent host
can switch tokens without a refused call; only the previous token's SHA-256 is kept for that.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from scoped_mcp.credentials import refs
from scoped_mcp.credentials.backends import Catalog
from scoped_mcp.credentials.broker import CredentialBroker
from scoped_mcp.credentials.plan import KeyPlan
from scoped_mcp.errors import CredentialError, ManifestError
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import Manifest

MODULE = "serve.http"
KEY = "HTTP_TOKEN"
MIN_TOKEN_BYTES = 16


def token_plans(
    manifest: Manifest, agent_ctx: AgentContext, catalog: Catalog
) -> dict[str, dict[str, KeyPlan]]:
    """The broker plan of the bearer token named by ``serve.http.token``."""
    if manifest.serve.http.auth == "jwt":
        return {}  # JWTs are verified with the issuer's public keys: no secret to plan
    text = manifest.serve.http.token
    where = "serve.http.token"
    if text is None:
        raise ManifestError(
            f"{where}: serving over HTTP needs a bearer token",
            fix="add serve: {http: {token: env:SCOPED_MCP_HTTP_TOKEN}} (or a file:, keyring:, "
            "vault: reference) to the manifest and give the agent host the same value",
        )
    scheme, path, field = refs.split(text, agent_ctx, where=where)
    ref = catalog.get(scheme).parse_ref(scheme, path, field, text=text, where=where)
    return {MODULE: {KEY: KeyPlan(MODULE, KEY, ref, required=True)}}


class TokenUnavailable(Exception):
    """The broker could not produce the current token (its source is unreadable or down)."""


class TokenCheck:
    """Says whether a presented bearer token is the current one (or the previous, in overlap)."""

    def __init__(
        self,
        broker: CredentialBroker,
        *,
        overlap: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self._overlap = overlap
        self._clock = clock
        self._current: bytes | None = None
        self._previous: tuple[bytes, float] | None = None

    def __repr__(self) -> str:
        return "TokenCheck(<hidden>)"

    async def accepts(self, presented: bytes) -> bool:
        """Whether ``presented`` is valid now; ``TokenUnavailable`` when the broker cannot say
        (the request is refused all the same: this fails closed)."""
        try:
            async with self._broker.open(MODULE, KEY) as plain:
                current = hashlib.sha256(plain.bytes_view).digest()
                too_short = len(plain.bytes_view) < MIN_TOKEN_BYTES
        except CredentialError:
            raise TokenUnavailable from None
        if too_short:
            return False
        self._note(current)
        offered = hashlib.sha256(presented).digest()
        # Both comparisons always run, so the timing says nothing about which one matched.
        ok = hmac.compare_digest(offered, current)
        previous = self._previous
        if previous is not None and self._clock() < previous[1]:
            ok = hmac.compare_digest(offered, previous[0]) or ok
        return ok

    def _note(self, current: bytes) -> None:
        """Remember a rotation: the token seen before stays valid for the overlap."""
        if self._current is not None and not hmac.compare_digest(self._current, current):
            self._previous = (self._current, self._clock() + self._overlap)
        self._current = current
