"""CredentialAuth moves a placeholder request onto the credential-held URL."""

from __future__ import annotations

import httpx
import pytest

from scoped_mcp.net.auth import _retarget
from scoped_mcp.net.client import PLACEHOLDER_ORIGIN


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("https://hooks.example/services/T/B/x", "/", "https://hooks.example/services/T/B/x"),
        (
            "https://h.example/api/webhooks/1/t?wait=true",
            "/",
            "https://h.example/api/webhooks/1/t?wait=true",
        ),
        ("http://[::1]:8448/prefix/", "/_matrix/a%23b", "http://[::1]:8448/prefix/_matrix/a%23b"),
        ("https://u:p@ntfy.example/?auth=q", "/?x=1", "https://ntfy.example/?auth=q&x=1"),
    ],
)
def test_requests_are_retargeted_onto_the_credential_url(
    base: str, path: str, expected: str
) -> None:
    """The placeholder request is moved onto the configured URL: its path prefix and query kept,
    percent-encoding preserved, user info removed, Host header rewritten."""
    client = httpx.Client(base_url=PLACEHOLDER_ORIGIN)
    request = client.build_request("POST", path)
    _retarget(request, base, "KEY")
    assert str(request.url) == expected
    assert request.headers["Host"] == httpx.URL(expected).netloc.decode()
