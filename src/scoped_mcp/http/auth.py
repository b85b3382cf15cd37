"""How an HTTP request proves it may reach the MCP endpoint: the interface and the token scheme.

An ``Authenticator`` looks at the ``Authorization`` header and says nothing (let it in) or why it
refuses: ``(status, reason)``, the reason for the audit record only, never for the client. Two
implementations: ``TokenAuth`` here (the manifest's shared bearer token) and
``jwt_auth.JwtAuth`` (JWTs from an issuer). Either may also publish documents served without
authentication (the protected resource metadata of RFC 9728).
"""

from __future__ import annotations

from typing import Protocol

from scoped_mcp.http.token import TokenCheck, TokenUnavailable

Refusal = tuple[int, str]


class Authenticator(Protocol):
    """Decides on one request's credentials."""

    async def refusal(self, authorization: str | None) -> Refusal | None:
        """None to let the request in, else (status, reason for the audit record)."""
        ...

    def challenge(self, status: int) -> dict[str, str]:
        """Headers for a refusal with ``status`` (``WWW-Authenticate`` on 401)."""
        ...

    def documents(self) -> dict[str, bytes]:
        """JSON documents served without authentication, by path."""
        ...


def bearer(authorization: str | None) -> str | None:
    """The credential of ``Authorization: Bearer X`` (None for another scheme or none)."""
    scheme, _, presented = (authorization or "").partition(" ")
    presented = presented.strip()
    return presented if scheme.lower() == "bearer" and presented else None


class TokenAuth:
    """The shared bearer token of ``serve.http.token``."""

    def __init__(self, check: TokenCheck) -> None:
        self._check = check

    def __repr__(self) -> str:
        return "TokenAuth(<hidden>)"

    async def refusal(self, authorization: str | None) -> Refusal | None:
        if authorization is None:
            return 401, "missing token"
        presented = bearer(authorization)
        if presented is None:
            return 401, "wrong token"
        try:
            accepted = await self._check.accepts(presented.encode("latin-1"))
        except TokenUnavailable:
            return 503, "token unavailable"
        return None if accepted else (401, "wrong token")

    def challenge(self, status: int) -> dict[str, str]:
        return {"www-authenticate": "Bearer"} if status == 401 else {}

    def documents(self) -> dict[str, bytes]:
        return {}
