"""One OAuth grant as kept in a store: endpoints, client registration and tokens.

The store is the only place a refresh token lives outside the broker's sealed memory; nothing
here is ever printed. ``repr`` and ``str`` show no token and no client secret.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from scoped_mcp.errors import BackendMisconfigured

FORMAT_VERSION = 1
REFRESH_FRACTION = 2 / 3
SECRET_FIELDS = ("access_token", "refresh_token", "client_secret")


def digest(value: str | None) -> str:
    """A short, non-reversible name for a token, to compare tokens without holding them."""
    return hashlib.sha256((value or "").encode()).hexdigest()[:16] if value else ""


@dataclass(frozen=True, slots=True)
class Grant:
    """What the authorization server gave us, and where to use it again."""

    server_url: str
    resource: str
    token_endpoint: str
    client_id: str
    issuer: str | None = None
    revocation_endpoint: str | None = None
    client_secret: str | None = None
    auth_method: str | None = None
    preregistered: bool = False
    scope: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    issued_at: float = field(default_factory=time.time)
    expires_at: float | None = None
    version: int = FORMAT_VERSION

    def __repr__(self) -> str:
        return (
            f"Grant(server_url={self.server_url!r}, scope={self.scope!r}, "
            f"expires_at={self.expires_at!r}, tokens=<hidden>)"
        )

    __str__ = __repr__

    @property
    def refresh_at(self) -> float | None:
        """When the access token should be replaced: about two thirds into its lifetime."""
        if self.expires_at is None:
            return None
        return self.issued_at + (self.expires_at - self.issued_at) * REFRESH_FRACTION

    def fresh(self, now: float) -> bool:
        """Whether the stored access token is before its refresh point."""
        if not self.access_token:
            return False
        due = self.refresh_at
        return due is None or now < due

    def with_tokens(self, answer: dict[str, Any], now: float) -> Grant:
        """This grant after a token response (a refresh may omit the refresh token and scope)."""
        lifetime = answer.get("expires_in")
        return replace(
            self,
            access_token=str(answer["access_token"]),
            refresh_token=str(answer.get("refresh_token") or self.refresh_token or "") or None,
            scope=str(answer.get("scope") or self.scope or "") or None,
            issued_at=now,
            expires_at=now + float(lifetime) if isinstance(lifetime, int | float) else None,
        )

    def secrets(self) -> list[str]:
        """Every secret value this grant holds, for the redactor."""
        return [v for v in (self.access_token, self.refresh_token, self.client_secret) if v]

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, *, where: str) -> Grant:
        try:
            raw = json.loads(data)
            known = {f.name for f in fields(cls)}
            if not isinstance(raw, dict) or raw.get("version") != FORMAT_VERSION:
                raise ValueError
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (ValueError, TypeError):
            # Never quote the content: it holds tokens.
            raise BackendMisconfigured(
                f"the OAuth grant in {where} is not readable",
                fix="log in again (scoped-mcp auth login), which replaces it",
            ) from None
