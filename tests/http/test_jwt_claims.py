"""JwtAuth's decisions on claims and keys, against a real issuer on loopback (no server child)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest

from scoped_mcp.http.jwt_auth import JwtAuth
from scoped_mcp.manifest import JwtAuthSpec
from tests.http.issuer import Issuer, running_issuer
from tests.services.fake_http import Reply

pytestmark = pytest.mark.anyio
AUDIENCE = "http://127.0.0.1:8765/mcp"
AGENT = "agent-07"


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running:
        yield running


def auth_for(issuer: Issuer, **spec: object) -> JwtAuth:
    settings = {"issuer": issuer.url, "audience": AUDIENCE, "jwks_url": issuer.jwks_url, **spec}
    return JwtAuth(JwtAuthSpec.model_validate(settings), agent_id=AGENT)


def bearer(token: str) -> str:
    return f"Bearer {token}"


async def test_leeway_covers_small_clock_skew_only(issuer: Issuer) -> None:
    """exp 10 s ago passes with the default 30 s leeway; 60 s ago does not; an iat 60 s in the
    future is refused, 10 s in the future is accepted."""
    auth, now = auth_for(issuer), int(time.time())

    def token(**claims: object) -> str:
        return issuer.token("rsa-1", audience=AUDIENCE, subject=AGENT, **claims)

    assert await auth.refusal(bearer(token(iat=now - 100, exp=now - 10))) is None
    assert await auth.refusal(bearer(token(iat=now - 100, exp=now - 60))) == (
        401,
        "invalid jwt: expired",
    )
    assert await auth.refusal(bearer(token(iat=now + 10))) is None
    assert await auth.refusal(bearer(token(iat=now + 60))) == (401, "invalid jwt: not yet valid")


async def test_the_agent_claim_is_configurable_and_must_be_a_string(issuer: Issuer) -> None:
    """agent_claim: azp reads that claim; sub then does not matter; a non-string claim is 403."""
    auth = auth_for(issuer, agent_claim="azp")
    named = issuer.token("ec-1", audience=AUDIENCE, subject="someone", azp=AGENT)
    listed = issuer.token("ec-1", audience=AUDIENCE, subject=AGENT, azp=[AGENT])
    assert await auth.refusal(bearer(named)) is None
    assert await auth.refusal(bearer(listed)) == (403, "agent mismatch")


async def test_an_audience_list_holding_this_resource_passes(issuer: Issuer) -> None:
    """aud may be a list; it must hold this server's resource URL."""
    auth = auth_for(issuer)
    token = issuer.token("rsa-1", audience=["https://other.example", AUDIENCE], subject=AGENT)
    assert await auth.refusal(bearer(token)) is None


async def test_a_key_of_another_type_than_the_alg_is_refused(issuer: Issuer) -> None:
    """An ES256 header naming the RSA key's kid is refused, not verified with the RSA key."""
    auth = auth_for(issuer)
    es_token = issuer.token("ec-1", audience=AUDIENCE, subject=AGENT)
    header = jwt.get_unverified_header(es_token)
    assert header["alg"] == "ES256"
    swapped = jwt.encode(
        jwt.decode(es_token, options={"verify_signature": False}),
        issuer.keys["ec-1"],
        algorithm="ES256",
        headers={"kid": "rsa-1"},
    )
    status, reason = await auth.refusal(bearer(swapped)) or (0, "")
    assert status == 401
    assert reason.startswith("invalid jwt: ")


async def test_only_allowlisted_algorithms_reach_the_keys(issuer: Issuer) -> None:
    """algorithms: [ES256]: an RS256 token is refused before the JWKS is fetched."""
    auth = auth_for(issuer, algorithms=["ES256"])
    token = issuer.token("rsa-1", audience=AUDIENCE, subject=AGENT)
    assert await auth.refusal(bearer(token)) == (401, "invalid jwt: algorithm not allowed")
    assert issuer.jwks_fetches() == 0


async def test_an_unreachable_issuer_is_503_and_garbage_is_malformed(issuer: Issuer) -> None:
    """No keys can be fetched: 503 (our problem); a token that is not a JWT: 401 malformed;
    another scheme: 401."""
    assert issuer.http is not None
    issuer.http.route = lambda request: Reply(503, b"")
    auth = auth_for(issuer)
    token = issuer.token("rsa-1", audience=AUDIENCE, subject=AGENT)
    assert await auth.refusal(bearer(token)) == (503, "issuer keys unavailable")
    assert await auth.refusal(bearer("not-a-jwt")) == (401, "invalid jwt: malformed")
    assert await auth.refusal(f"Basic {token}") == (401, "invalid jwt: not a bearer token")
    assert await auth.refusal(None) == (401, "missing token")
    assert token not in repr(auth)
