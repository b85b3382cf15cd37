"""Requests authenticated by JWTs from one issuer: this server as an OAuth resource server.

PyJWT does the cryptography and the registered claims; this file decides what is acceptable:
the header's ``alg`` must be in the manifest's allow-list (asymmetric only: ``none`` and ``HS*``
cannot be configured, so a public key can never serve as an HMAC secret), the key is the issuer's
JWK for the token's ``kid`` (``jwks.py``) and must fit that algorithm, ``exp`` and ``iat`` are
required and ``nbf`` honoured (each with the configured leeway), ``iss`` must be the issuer and
``aud`` hold this server's resource URL. The agent claim (``sub`` by default) must then equal
``AGENT_ID``: a valid token for another agent is a 403. Every other failure is a 401 whose
``WWW-Authenticate`` points at the protected resource metadata; the reason goes to the audit
record only. When the issuer's keys cannot be fetched the answer is 503 (our problem, not the
client's: not counted as a failure).
"""

from __future__ import annotations

import hmac
from typing import Any

import jwt

from scoped_mcp.http.auth import Refusal, bearer
from scoped_mcp.http.jwks import JwksCache, JwksUnavailable, UnknownKey
from scoped_mcp.http.resource_metadata import documents, metadata_url
from scoped_mcp.manifest import JwtAuthSpec

UNAVAILABLE = 503
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.MissingRequiredClaimError, "missing claim"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
)


class JwtAuth:
    """Verifies ``Authorization: Bearer <JWT>`` for one agent."""

    def __init__(self, spec: JwtAuthSpec, *, agent_id: str, keys: JwksCache | None = None) -> None:
        self._spec = spec
        self._agent_id = agent_id
        self._keys = keys or JwksCache(
            issuer=spec.issuer, jwks_url=spec.jwks_url, refresh_seconds=spec.jwks_refresh_seconds
        )
        self._metadata = metadata_url(spec.audience)

    def __repr__(self) -> str:
        return f"JwtAuth(issuer={self._spec.issuer!r}, audience={self._spec.audience!r})"

    async def refusal(self, authorization: str | None) -> Refusal | None:
        if authorization is None:
            return 401, "missing token"
        token = bearer(authorization)
        if token is None:
            return 401, "invalid jwt: not a bearer token"
        try:
            claims = await self._verified(token)
        except _Refused as refused:
            return refused.status, refused.reason
        agent = claims.get(self._spec.agent_claim)
        if not isinstance(agent, str) or not hmac.compare_digest(
            agent.encode(), self._agent_id.encode()
        ):
            return 403, "agent mismatch"
        return None

    async def _verified(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _Refused("malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self._spec.algorithms:
            raise _Refused("algorithm not allowed")
        if kid is not None and not isinstance(kid, str):
            raise _Refused("malformed")
        try:
            jwk = await self._keys.key(kid)
        except UnknownKey:
            raise _Refused("unknown key") from None
        except JwksUnavailable:
            raise _Refused("issuer keys unavailable", UNAVAILABLE) from None
        if jwk.get("alg", alg) != alg or jwk.get("use", "sig") != "sig":
            raise _Refused("key not for this algorithm")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self._spec.audience,
                issuer=self._spec.issuer,
                leeway=self._spec.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise _Refused(_reason(exc)) from None
        return claims

    def challenge(self, status: int) -> dict[str, str]:
        if status != 401:
            return {}
        return {"www-authenticate": f'Bearer resource_metadata="{self._metadata}"'}

    def documents(self) -> dict[str, bytes]:
        return documents(self._spec)


class _Refused(Exception):
    def __init__(self, what: str, status: int = 401) -> None:
        super().__init__(what)
        self.status = status
        self.reason = what if status != 401 else f"invalid jwt: {what}"


def _reason(exc: jwt.PyJWTError) -> str:
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "invalid"
