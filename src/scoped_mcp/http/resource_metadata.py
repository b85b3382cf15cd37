"""This server's OAuth protected resource metadata (RFC 9728), as MCP's authorization spec asks.

A client refused with 401 follows ``WWW-Authenticate: Bearer resource_metadata="URL"`` to this
document to learn which authorization server issues tokens for it. It is served, without
authentication, at ``/.well-known/oauth-protected-resource`` and at the path-suffixed form RFC 9728
section 3.1 derives from the resource URL (``/.well-known/oauth-protected-resource/mcp``).
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

from scoped_mcp.manifest import JwtAuthSpec

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def metadata_url(resource: str) -> str:
    """Where the metadata of ``resource`` is, by RFC 9728's rule."""
    parts = urlsplit(resource)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + path, "", ""))


def documents(spec: JwtAuthSpec) -> dict[str, bytes]:
    """The metadata document, by each path it is served at."""
    body = json.dumps(
        {
            "resource": spec.audience,
            "authorization_servers": [spec.issuer],
            "bearer_methods_supported": ["header"],
        }
    ).encode()
    return {WELL_KNOWN: body, urlsplit(metadata_url(spec.audience)).path: body}
