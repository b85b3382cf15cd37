"""The JWKS cache against a real issuer on loopback: discovery, rotation, bounded refresh."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scoped_mcp.http.jwks import JwksCache, JwksUnavailable, UnknownKey, metadata_urls
from tests.http.issuer import Issuer, running_issuer
from tests.services.fake_http import Reply

pytestmark = pytest.mark.anyio


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running:
        yield running


async def test_unknown_kids_refetch_at_most_once_per_interval_then_rotation_is_seen(
    issuer: Issuer,
) -> None:
    """Many tokens with made-up kids cost one JWKS fetch per refresh interval; a key the issuer
    adds is found on the first lookup after the interval."""
    clock = Clock()
    cache = JwksCache(issuer=issuer.url, jwks_url=None, refresh_seconds=60, clock=clock)
    assert (await cache.key("rsa-1"))["kty"] == "RSA"
    for n in range(20):
        with pytest.raises(UnknownKey):
            await cache.key(f"made-up-{n}")
    assert issuer.jwks_fetches() == 1
    issuer.add_ec("ec-2")
    with pytest.raises(UnknownKey):
        await cache.key("ec-2")  # inside the interval: not fetched again
    clock.now += 61
    assert (await cache.key("ec-2"))["crv"] == "P-256"
    assert issuer.jwks_fetches() == 2
    assert (await cache.key("rsa-1"))["kty"] == "RSA"
    assert issuer.jwks_fetches() == 2


async def test_an_issuer_down_keeps_known_keys_and_a_cold_cache_is_unavailable(
    issuer: Issuer,
) -> None:
    """Once keys are cached, a failed refresh keeps them; with nothing cached, unavailable."""
    clock = Clock()
    cache = JwksCache(issuer=issuer.url, jwks_url=issuer.jwks_url, refresh_seconds=1, clock=clock)
    await cache.key("rsa-1")
    assert issuer.http is not None
    issuer.http.route = lambda request: Reply(500, b"")
    clock.now += 4000  # past the cache's age: a refresh is due, and fails
    assert (await cache.key("rsa-1"))["kty"] == "RSA"
    cold = JwksCache(issuer=issuer.url, jwks_url=issuer.jwks_url, refresh_seconds=1, clock=clock)
    with pytest.raises(JwksUnavailable):
        await cold.key("rsa-1")


async def test_metadata_for_another_issuer_is_not_used(issuer: Issuer) -> None:
    """Discovery refuses metadata whose issuer is not the configured one (RFC 8414 3.3)."""
    assert issuer.http is not None
    issuer.http.route = lambda request: Reply(
        200, {"issuer": "https://elsewhere.example", "jwks_uri": issuer.jwks_url}
    )
    cache = JwksCache(issuer=issuer.url, jwks_url=None, refresh_seconds=1)
    with pytest.raises(JwksUnavailable):
        await cache.key("rsa-1")


def test_metadata_urls_follow_rfc_8414_then_openid() -> None:
    """An issuer with a path: the path goes after the well-known name (RFC 8414), or before
    openid-configuration (OpenID Connect Discovery)."""
    assert metadata_urls("https://auth.example/tenant/") == [
        "https://auth.example/.well-known/oauth-authorization-server/tenant",
        "https://auth.example/tenant/.well-known/openid-configuration",
    ]


async def test_a_plain_http_jwks_uri_off_loopback_is_not_followed(issuer: Issuer) -> None:
    """Metadata pointing the JWKS at plain http on another host is not used."""
    assert issuer.http is not None
    issuer.http.route = lambda request: Reply(
        200, {"issuer": issuer.url, "jwks_uri": "http://keys.example/jwks.json"}
    )
    cache = JwksCache(issuer=issuer.url, jwks_url=None, refresh_seconds=1)
    with pytest.raises(JwksUnavailable):
        await cache.key("rsa-1")
