"""CredentialAuth: the one auth flow that moves a request onto the credential-held URL and adds
the credential-held token, for a whole URL (webhooks), a base URL plus token, or a bare header."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
import pytest

from scoped_mcp.credentials.lease import Plaintext
from scoped_mcp.net.auth import CredentialAuth, _retarget
from scoped_mcp.net.client import PLACEHOLDER_ORIGIN

pytestmark = pytest.mark.anyio


class MemoryView:
    """A ``CredentialView`` over a dict: a real implementation of the interface, for tests."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    @asynccontextmanager
    async def use(self, key: str) -> AsyncIterator[Plaintext]:
        yield Plaintext(bytearray(self._values[key].encode()))

    async def has(self, key: str) -> bool:
        return key in self._values

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def protect(self, value: str) -> None:
        self._values.setdefault("_protected", value)

    def record(self, action: str, **fields: object) -> None:
        return None


async def sent(auth: CredentialAuth, path: str = "/x") -> tuple[httpx.Request, httpx.Request]:
    """Send one request through ``auth`` to a transport that records it; return (seen, after)."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(httpx.Request(request.method, request.url, headers=request.headers))
        return httpx.Response(204)

    transport = httpx.MockTransport(record)
    async with httpx.AsyncClient(transport=transport, base_url=PLACEHOLDER_ORIGIN) as client:
        response = await client.get(path, auth=auth)
    return seen[0], response.request


async def test_base_url_and_bearer_token() -> None:
    """url_key + token_key: the request goes to the credential URL with "Bearer <token>"."""
    view = MemoryView({"URL": "https://api.example/base", "TOKEN": "tk-1"})
    seen, after = await sent(CredentialAuth(view, url_key="URL", token_key="TOKEN"))
    assert str(seen.url) == "https://api.example/base/x"
    assert seen.headers["Authorization"] == "Bearer tk-1"
    assert "Authorization" not in after.headers


async def test_bare_header_without_scheme_and_no_url() -> None:
    """token_key alone, a custom header and scheme None: the bare value in that header, URL kept."""
    view = MemoryView({"KEY": "k-2"})
    auth = CredentialAuth(view, token_key="KEY", header="X-Api-Key", scheme=None)
    seen, after = await sent(auth)
    assert seen.headers["X-Api-Key"] == "k-2"
    assert "Authorization" not in seen.headers
    assert str(seen.url).startswith(PLACEHOLDER_ORIGIN)
    assert "X-Api-Key" not in after.headers


async def test_optional_token_missing_falls_back_to_url_userinfo() -> None:
    """A missing optional token sends nothing, or HTTP Basic from the URL's user:password."""
    view = MemoryView({"URL": "https://u:p@ntfy.example/"})
    auth = CredentialAuth(view, url_key="URL", token_key="TOKEN", token_optional=True)
    seen, after = await sent(auth)
    assert seen.headers["Authorization"] == "Basic dTpw"
    assert seen.url.userinfo == b""
    assert "Authorization" not in after.headers


def test_repr_names_keys_only() -> None:
    """The repr names the credential keys and header, never a value."""
    auth = CredentialAuth(MemoryView({"T": "secret-value"}), token_key="T")
    assert "secret-value" not in repr(auth)
    assert "token_key='T'" in repr(auth)


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
