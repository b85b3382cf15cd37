"""Whether a host is only this machine, and whether a URL may carry a secret.

One answer for every place that asks: the HTTP bind address, an SMTP server without TLS, a
Vault or token endpoint over plain http, an upstream MCP URL, a JWT issuer. Names are not
resolved: only ``localhost`` (and ``ip6-localhost``) and loopback IP literals count.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (``[::1]`` brackets allowed)."""
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def https_or_loopback(url: str) -> bool:
    """Whether a credential may be sent to ``url``: https to a named host, or plain http to a
    loopback address; never user info in the URL, never another scheme."""
    parts = urlsplit(url)
    if parts.username or not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and is_loopback_host(parts.hostname)
