"""``net/loopback``: the one answer to "is this only this machine" and "may a secret go there"."""

from __future__ import annotations

import pytest

from scoped_mcp.net.loopback import https_or_loopback, is_loopback_host


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST",
        "localhost.",
        "ip6-localhost",
        "127.0.0.1",
        "127.9.8.7",
        "::1",
        "[::1]",
    ],
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host", ["", "example.org", "localhost.example.org", "10.0.0.1", "0.0.0.0", "::", "2130706433x"]
)
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback_host(host)


@pytest.mark.parametrize(
    "url",
    [
        "https://issuer.example.org/",
        "http://127.0.0.1:8080/jwks",
        "http://localhost/x",
        "http://[::1]:9/",
    ],
)
def test_https_or_plain_http_to_loopback_may_carry_a_secret(url: str) -> None:
    assert https_or_loopback(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://issuer.example.org/",
        "ftp://127.0.0.1/keys",  # not http at all: the manifest check let this through before
        "file://localhost/etc/passwd",
        "https://user:pw@issuer.example.org/",
        "https:///no-host",
        "",
    ],
)
def test_anything_else_may_not(url: str) -> None:
    assert not https_or_loopback(url)
