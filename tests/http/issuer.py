"""A real token issuer on 127.0.0.1 for the JWT tests: keys from ``cryptography``, metadata and a
JWKS served over HTTP (tests/services/fake_http.py), tokens signed with PyJWT."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.services.fake_http import FakeHTTP, Recorded, Reply

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class Issuer:
    """Signing keys by kid (published in the JWKS), and the HTTP server publishing them."""

    keys: dict[str, PrivateKey] = field(default_factory=dict)
    http: FakeHTTP | None = None

    @property
    def url(self) -> str:
        assert self.http is not None
        return self.http.url

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks.json"

    def add_rsa(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def add_ec(self, kid: str) -> None:
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> dict[str, Any]:
        published = []
        for kid, key in self.keys.items():
            if isinstance(key, rsa.RSAPrivateKey):
                jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            else:
                jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            published.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": published}

    def route(self, request: Recorded) -> Reply:
        if request.path == "/.well-known/oauth-authorization-server":
            return Reply(200, {"issuer": self.url, "jwks_uri": self.jwks_url})
        if request.path == "/jwks.json":
            return Reply(200, self.jwks())
        return Reply(404, b"")

    def jwks_fetches(self) -> int:
        assert self.http is not None
        return sum(1 for r in self.http.requests if r.path == "/jwks.json")

    def token(self, kid: str, *, audience: str, subject: str, **claims: Any) -> str:
        """A token signed with key ``kid``; ``claims`` override (a None value removes one)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.url,
            "aud": audience,
            "sub": subject,
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        key = self.keys[kid]
        alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


@contextmanager
def running_issuer() -> Iterator[Issuer]:
    """An issuer with one RSA key (kid rsa-1) and one EC key (kid ec-1), serving for the block."""
    issuer = Issuer()
    issuer.add_rsa("rsa-1")
    issuer.add_ec("ec-1")
    issuer.http = FakeHTTP(issuer.route).start()
    try:
        yield issuer
    finally:
        issuer.http.stop()
