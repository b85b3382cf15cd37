"""Which network addresses an outbound request may reach, and the resolver that finds them.

The policy fails closed and judges addresses, never names:

* Every address is classified, with IPv4 embedded in IPv6 (mapped ``::ffff:a.b.c.d``, compatible
  ``::a.b.c.d``, SIIT, NAT64, 6to4, Teredo) judged as the IPv4 it carries; an address takes the
  most restrictive class of everything it contains.
* Link-local, cloud metadata, unspecified, multicast and reserved addresses are refused always.
* Loopback and private addresses (RFC 1918, CGNAT, ULA, documentation ranges, ...) are refused
  unless the operator sets ``allow_private_networks`` for that service.
* A host name is resolved once per connection and every address it resolves to must pass; the
  caller connects to the address returned here, so a second lookup (DNS rebinding) cannot change
  where the connection goes.
* Host strings that are IPv4 in a legacy numeric form (``2130706433``, ``0x7f.1``, ``0177.0.0.1``)
  are parsed as WHATWG URL parsers do, so a configuration or a redirect cannot hide an address.

The resolver is an interface (``Resolver``) so tests can map names without touching real DNS.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import re
import socket
from typing import Final, Protocol

import anyio

from scoped_mcp.errors import BackendError, ScopeViolation

_log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressClass(enum.IntEnum):
    """What an address is, ordered from least to most restricted."""

    PUBLIC = 0
    LOOPBACK = 1
    PRIVATE = 2
    LINK_LOCAL = 3
    METADATA = 4
    UNSPECIFIED = 5
    MULTICAST = 6
    RESERVED = 7

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


PRIVATE_CLASSES: Final = frozenset({AddressClass.LOOPBACK, AddressClass.PRIVATE})
"""Classes ``allow_private_networks`` opens; everything above them is refused always."""

METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle instance metadata
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud metadata
        "168.63.129.16",  # Azure wire server (a public address)
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
_V4_RESERVED: Final = ipaddress.ip_network("240.0.0.0/4")
_V4_THIS_NET: Final = ipaddress.ip_network("0.0.0.0/8")
_V6_COMPAT: Final = ipaddress.ip_network("::/96")
_V6_SIIT: Final = ipaddress.ip_network("::ffff:0:0:0/96")
_V6_NAT64: Final = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_V6_SITE_LOCAL: Final = ipaddress.ip_network("fec0::/10")


def _first_class(ip: IPAddress, checks: tuple[tuple[str, AddressClass], ...]) -> AddressClass:
    for attribute, kind in checks:
        if getattr(ip, attribute):
            return kind
    return AddressClass.PUBLIC if ip.is_global else AddressClass.PRIVATE


_COMMON_CHECKS: Final = (
    ("is_loopback", AddressClass.LOOPBACK),
    ("is_link_local", AddressClass.LINK_LOCAL),
    ("is_multicast", AddressClass.MULTICAST),
)


def _classify_v4(ip: ipaddress.IPv4Address) -> AddressClass:
    if ip in METADATA_ADDRESSES:
        return AddressClass.METADATA
    if ip in _V4_THIS_NET:
        return AddressClass.UNSPECIFIED
    if ip in _V4_RESERVED:
        return AddressClass.RESERVED
    return _first_class(ip, _COMMON_CHECKS)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address ``ip`` carries by a standard embedding (mapped, NAT64, 6to4, ...)."""
    found: list[ipaddress.IPv4Address] = []
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    translated = ip in _V6_SIIT or any(ip in net for net in _V6_NAT64)
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    elif translated or (ip in _V6_COMPAT and int(ip) > 1):
        found.append(low32)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def _classify_v6(ip: ipaddress.IPv6Address) -> AddressClass:
    if ip in METADATA_ADDRESSES:
        return AddressClass.METADATA
    if ip.is_unspecified:
        return AddressClass.UNSPECIFIED
    if ip in _V6_SITE_LOCAL:
        return AddressClass.PRIVATE
    return _first_class(ip, _COMMON_CHECKS)


def classify(ip: IPAddress) -> AddressClass:
    """The most restrictive class of ``ip`` and of every IPv4 address embedded in it."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _classify_v4(ip)
    if ip.scope_id:
        return AddressClass.LINK_LOCAL
    own = _classify_v6(ip)
    embedded = [_classify_v4(v4) for v4 in embedded_ipv4(ip)]
    if embedded and own is AddressClass.PRIVATE and ip.ipv4_mapped is not None:
        # ::ffff:a.b.c.d is not "global" to the ipaddress module, whatever it carries.
        own = AddressClass.PUBLIC
    return max([own, *embedded])


def check_address(ip: IPAddress, *, allow_private: bool, service: str) -> AddressClass:
    """Return the class of ``ip`` if the policy lets ``service`` connect to it; else refuse."""
    kind = classify(ip)
    if kind is AddressClass.PUBLIC:
        return kind
    if kind in PRIVATE_CLASSES and allow_private:
        _log.info(
            "connecting to a non-public address (allow_private_networks)",
            extra={"service": service, "address_class": kind.label},
        )
        return kind
    hint = " (allow_private_networks is off)" if kind in PRIVATE_CLASSES else ""
    raise ScopeViolation(f"{service}: refused to connect to a {kind.label} address{hint}")


_V4_PART: Final = re.compile(r"0[xX][0-9A-Fa-f]*|0[0-7]*|[1-9][0-9]*")
_NUMERIC_LAST: Final = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")


def _part_value(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    return int(part)


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``host`` as WHATWG parses an IPv4 host (1-4 decimal, octal or hex parts), or None."""
    parts = host.split(".")
    if parts and parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if not parts or not _NUMERIC_LAST.fullmatch(parts[-1]):
        return None
    if len(parts) > 4 or not all(_V4_PART.fullmatch(p) for p in parts):
        raise ValueError("not a valid IPv4 address")
    values = [_part_value(p) for p in parts]
    if any(v > 255 for v in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise ValueError("IPv4 address part out of range")
    number = values[-1]
    for index, value in enumerate(values[:-1]):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def host_address(host: str) -> IPAddress | None:
    """The address a URL host string denotes when it is an IP literal in any form, else None.

    Raises ``ValueError`` for a host that looks numeric but is not a valid address.
    """
    if host.startswith("[") and host.endswith("]"):
        return ipaddress.IPv6Address(host[1:-1])
    if ":" in host:
        return ipaddress.IPv6Address(host)
    return _legacy_ipv4(host)


def is_canonical_literal(host: str) -> bool:
    """True if ``host`` is an IP literal written in its one canonical form."""
    try:
        address = host_address(host)
    except ValueError:
        return False
    if address is None:
        return False
    written = host[1:-1] if host.startswith("[") else host
    return written == str(address) or written == address.compressed


class Resolver(Protocol):
    """Turns a host name into addresses; the system resolver unless a test supplies another."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` resolves to, in preference order."""
        ...


class SystemResolver:
    """Resolves with the operating system's resolver (``getaddrinfo``), off the event loop."""

    def __repr__(self) -> str:
        return "SystemResolver()"

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found: list[IPAddress] = []
        for info in infos:
            # A scoped IPv6 answer ("fe80::1%eth0") keeps its scope, which classify() refuses.
            address = ipaddress.ip_address(str(info[4][0]))
            if address not in found:
                found.append(address)
        return found


async def resolve_checked(
    host: str, port: int, *, resolver: Resolver, allow_private: bool, service: str
) -> IPAddress:
    """The one address to connect to for ``host``: resolved once, every answer checked.

    A literal is checked as it is. A name whose answers include any refused address is refused
    whole, so a resolver cannot slip a metadata address in beside a public one.
    """
    try:
        literal = host_address(host)
    except ValueError:
        raise ScopeViolation(f"{service}: the host is not a valid address") from None
    if literal is not None:
        check_address(literal, allow_private=allow_private, service=service)
        return literal
    try:
        answers = await resolver.resolve(host, port)
    except (OSError, UnicodeError):
        raise BackendError(f"{service}: the service's host name did not resolve") from None
    if not answers:
        raise BackendError(f"{service}: the service's host name did not resolve")
    for address in answers:
        check_address(address, allow_private=allow_private, service=service)
    return answers[0]
