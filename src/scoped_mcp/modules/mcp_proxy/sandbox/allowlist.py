"""``host:port`` entries of a sandbox's network allowlist, and the decision for one request.

Names and literals are matched exactly (case-insensitive, no wildcards). A requested IP literal
passes only when that literal is listed; a listed name passes only when every address it
resolves to is public. Loopback and private services are reached by listing their address.
Link-local, metadata, multicast and reserved addresses are refused even when listed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from scoped_mcp.net.policy import IPAddress, check_address, host_address


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One ``host:port``; ``address`` is set when the host is an IP literal."""

    host: str
    port: int
    address: IPAddress | None

    def __str__(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"{shown}:{self.port}"


def normal_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def parse_endpoint(text: str) -> Endpoint:
    """``host:port`` or ``[v6]:port``; ``ValueError`` naming the entry when it is malformed."""
    head, sep, port_text = text.rpartition(":")
    if not sep or not head or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"network.allow: {text!r} must be host:port (port 1-65535)")
    if ":" in head and not (head.startswith("[") and head.endswith("]")):
        raise ValueError(f"network.allow: {text!r}: write an IPv6 address as [addr]:port")
    host = normal_host(head)
    if not host or len(host) > 253 or any(c.isspace() or c in "/@?#" for c in host):
        raise ValueError(f"network.allow: {text!r} is not a host name or address")
    try:
        address = host_address(host)
    except ValueError:
        raise ValueError(f"network.allow: {text!r} is not a valid address") from None
    if address is not None:
        check = ipaddress.ip_address(str(address))
        try:
            check_address(check, allow_private=True, service="network.allow")
        except Exception:  # noqa: BLE001 - ScopeViolation, reworded for the manifest
            raise ValueError(f"network.allow: {text!r}: this address is never allowed") from None
        host = str(address)
    return Endpoint(host, int(port_text), address)


def listed(allow: list[Endpoint], host: str, port: int) -> Endpoint | None:
    """The entry that allows ``host:port`` as requested, or None."""
    wanted = normal_host(host)
    try:
        literal = host_address(wanted)
    except ValueError:
        return None
    if literal is not None:
        wanted = str(literal)
    for entry in allow:
        if entry.port == port and entry.host == wanted:
            return entry
    return None
