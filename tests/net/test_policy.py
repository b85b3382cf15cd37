"""The address policy on its own: classification, legacy literals, and resolve-once checking."""

from __future__ import annotations

import ipaddress

import pytest

from scoped_mcp.errors import BackendError, ScopeViolation
from scoped_mcp.net.policy import (
    AddressClass,
    check_address,
    classify,
    host_address,
    is_canonical_literal,
    resolve_checked,
)
from tests.services.netlab import StaticResolver

pytestmark = pytest.mark.anyio

C = AddressClass


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("8.8.8.8", C.PUBLIC),
        ("2606:4700:4700::1111", C.PUBLIC),
        ("127.0.0.1", C.LOOPBACK),
        ("127.255.0.9", C.LOOPBACK),
        ("::1", C.LOOPBACK),
        ("10.1.2.3", C.PRIVATE),
        ("172.16.0.1", C.PRIVATE),
        ("192.168.1.1", C.PRIVATE),
        ("100.64.0.1", C.PRIVATE),
        ("192.0.2.1", C.PRIVATE),
        ("fd12:3456::1", C.PRIVATE),
        ("fec0::1", C.PRIVATE),
        ("169.254.1.1", C.LINK_LOCAL),
        ("fe80::1", C.LINK_LOCAL),
        ("169.254.169.254", C.METADATA),
        ("169.254.170.2", C.METADATA),
        ("100.100.100.200", C.METADATA),
        ("168.63.129.16", C.METADATA),
        ("fd00:ec2::254", C.METADATA),
        ("0.0.0.0", C.UNSPECIFIED),
        ("0.1.2.3", C.UNSPECIFIED),
        ("::", C.UNSPECIFIED),
        ("224.0.0.1", C.MULTICAST),
        ("ff02::1", C.MULTICAST),
        ("240.0.0.1", C.RESERVED),
        ("255.255.255.255", C.RESERVED),
        # IPv4 carried inside IPv6 is judged as that IPv4.
        ("::ffff:169.254.169.254", C.METADATA),
        ("::ffff:8.8.8.8", C.PUBLIC),
        ("::ffff:10.0.0.1", C.PRIVATE),
        ("::127.0.0.1", C.LOOPBACK),
        ("::ffff:0:7f00:1", C.LOOPBACK),
        ("64:ff9b::a9fe:a9fe", C.METADATA),
        ("64:ff9b::808:808", C.PUBLIC),
        ("2002:a9fe:a9fe::", C.METADATA),
        ("2002:7f00:1::", C.LOOPBACK),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", C.PRIVATE),
    ],
)
def test_classify_addresses(address: str, expected: AddressClass) -> None:
    """Each address, including IPv4 embedded in IPv6 by every standard form, gets its class."""
    assert classify(ipaddress.ip_address(address)) is expected


def test_scoped_ipv6_is_link_local() -> None:
    """An IPv6 answer with a zone index is link-local, whatever the address."""
    assert classify(ipaddress.IPv6Address("fd00::1%eth0")) is C.LINK_LOCAL


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("::1", "::1"),
    ],
)
def test_legacy_numeric_hosts_parse_to_their_address(host: str, expected: str) -> None:
    """Decimal, octal, hex and short IPv4 forms parse as WHATWG URL parsers read them."""
    assert host_address(host) == ipaddress.ip_address(expected)


@pytest.mark.parametrize("host", ["allowed.test", "evil.example", "1a.example", "x"])
def test_names_are_not_literals(host: str) -> None:
    """A DNS name is not an address."""
    assert host_address(host) is None


@pytest.mark.parametrize("host", ["256.0.0.1", "1.2.3.4.5", "0x1g.1", "09.1.1.1", "4294967296"])
def test_invalid_numeric_hosts_raise(host: str) -> None:
    """A host that ends in a number but is no valid IPv4 is an error, not a name."""
    with pytest.raises(ValueError, match="IPv4"):
        host_address(host)


def test_canonical_literal_detection() -> None:
    """Only the one canonical spelling of an address counts as canonical."""
    assert is_canonical_literal("127.0.0.1")
    assert is_canonical_literal("[::1]")
    for host in ("2130706433", "127.1", "0177.0.0.1", "[0:0::1]", "name.test"):
        assert not is_canonical_literal(host)


def test_check_address_allows_private_only_with_the_flag() -> None:
    """Loopback and private addresses pass only with allow_private; the rest never."""
    loop = ipaddress.ip_address("127.0.0.1")
    with pytest.raises(ScopeViolation, match="allow_private_networks"):
        check_address(loop, allow_private=False, service="s")
    assert check_address(loop, allow_private=True, service="s") is C.LOOPBACK
    for refused in ("169.254.169.254", "0.0.0.0", "fe80::1", "224.0.0.1"):
        with pytest.raises(ScopeViolation, match="refused"):
            check_address(ipaddress.ip_address(refused), allow_private=True, service="s")


async def test_resolve_checked_resolves_once_and_checks_every_answer() -> None:
    """A name is looked up once; one refused answer among good ones refuses the whole name."""
    resolver = StaticResolver(
        {"ok.test": ["127.0.0.1", "::1"], "mixed.test": ["127.0.0.1", "169.254.169.254"]}
    )
    got = await resolve_checked("ok.test", 80, resolver=resolver, allow_private=True, service="s")
    assert got == ipaddress.ip_address("127.0.0.1")
    with pytest.raises(ScopeViolation, match="metadata"):
        await resolve_checked("mixed.test", 80, resolver=resolver, allow_private=True, service="s")
    assert resolver.lookups == ["ok.test", "mixed.test"]


async def test_resolve_checked_literals_skip_the_resolver() -> None:
    """An IP literal (in any form) is checked without a lookup; legacy forms are decoded first."""
    resolver = StaticResolver({})
    with pytest.raises(ScopeViolation, match="metadata"):
        await resolve_checked("2852039166", 80, resolver=resolver, allow_private=True, service="s")
    with pytest.raises(ScopeViolation, match="loopback"):
        await resolve_checked("0x7f.1", 80, resolver=resolver, allow_private=False, service="s")
    assert resolver.lookups == []


async def test_unknown_name_is_a_backend_error() -> None:
    """A name that does not resolve fails the call without naming an address."""
    with pytest.raises(BackendError, match="did not resolve"):
        await resolve_checked(
            "nx.test", 80, resolver=StaticResolver({}), allow_private=True, service="s"
        )
