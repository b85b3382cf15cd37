"""The one ``httpx.Auth`` flow that adds broker-held credentials to an outgoing request.

Module code builds a request against ``client.PLACEHOLDER_ORIGIN`` and never holds a
credential: this flow reads each value from the module's ``CredentialView`` only while the
request is prepared, and takes the header it set off the request once the exchange is over,
because the request object outlives the call (in tracebacks and ``response.request``).

* ``url_key`` names a credential holding the base URL (for webhooks, the whole URL); the request
  is moved onto it. Only http and https URLs are used, and a URL with ``user:password@`` sends
  them as HTTP Basic credentials unless a token is set.
* ``token_key`` names a token sent in ``header`` as ``"{scheme} {token}"`` (``scheme=None`` sends
  the bare value); it is required unless ``token_optional``.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Generator

from scoped_mcp.credentials.lease import Plaintext, wipe
from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import BackendError
from scoped_mcp.net._httpx import httpx


class CredentialAuth(httpx.Auth):
    """Points a request at a credential-held base URL and/or adds a credential-held token."""

    def __init__(
        self,
        credentials: CredentialView,
        *,
        url_key: str | None = None,
        token_key: str | None = None,
        token_optional: bool = False,
        header: str = "Authorization",
        scheme: str | None = "Bearer",
    ) -> None:
        self._credentials = credentials
        self._url_key = url_key
        self._token_key = token_key
        self._token_optional = token_optional
        self._header = header
        self._scheme = scheme

    def __repr__(self) -> str:
        return (
            f"CredentialAuth(url_key={self._url_key!r}, token_key={self._token_key!r}, "
            f"header={self._header!r})"
        )

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("CredentialAuth works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        basic = None
        if self._url_key is not None:
            async with self._credentials.use(self._url_key) as base:
                basic = _retarget(request, base.text(), self._url_key)
        added = {self._header}
        if self._token_key is not None and await self._has_token(self._token_key):
            async with self._credentials.use(self._token_key) as token:
                value = _header_value(self._scheme, token)
                request.headers.update({self._header.encode("ascii"): value})
        elif basic is not None:
            request.headers["Authorization"] = basic
            added.add("Authorization")
        try:
            yield request
        finally:
            for name in added:
                request.headers.pop(name, None)

    async def _has_token(self, key: str) -> bool:
        if not self._token_optional:
            return True
        # The broker remembers a missing optional key for its TTL: no backend read per call.
        return await self._credentials.has(key)


def _header_value(scheme: str | None, token: Plaintext) -> bytes:
    """``"{scheme} {token}"`` as the one bytes object httpx keeps, built in a buffer we wipe.

    ``text()`` and an f-string would leave two more unwipeable copies per call (the ``str`` and
    the formatted header), which httpx would then encode into a third.
    """
    prefix = f"{scheme} ".encode("ascii") if scheme else b""
    view = token.bytes_view
    buffer = bytearray(len(prefix) + len(view))  # sized once: no reallocation leaves a copy
    try:
        buffer[: len(prefix)] = prefix
        buffer[len(prefix) :] = view
        return bytes(buffer)
    finally:
        wipe(buffer)


def _retarget(request: httpx.Request, base_text: str, key: str) -> str | None:
    """Rewrite ``request`` from the placeholder origin onto ``base_text``; return Basic auth."""
    try:
        base = httpx.URL(base_text.strip())
    except httpx.InvalidURL:
        raise BackendError(f"{key} is not a valid URL") from None
    if base.scheme not in ("http", "https") or not base.host:
        raise BackendError(f"{key} must be an http:// or https:// URL")
    basic = None
    if base.username or base.password:
        pair = f"{base.username}:{base.password}".encode()
        basic = "Basic " + base64.b64encode(pair).decode("ascii")
    # Raw (still percent-encoded) paths: a '#' or '/' inside a room alias must stay encoded.
    base_path = base.raw_path.split(b"?", 1)[0]
    suffix = request.url.raw_path.split(b"?", 1)[0]
    path = base_path if suffix in (b"", b"/") else base_path.rstrip(b"/") + suffix
    query = b"&".join(q for q in (base.query, request.url.query) if q)
    raw_path = path + b"?" + query if query else path
    request.url = base.copy_with(username=None, password=None, raw_path=raw_path)
    host = base.host if ":" not in base.host else f"[{base.host}]"
    default_port = {"http": 80, "https": 443}[base.scheme]
    port = base.port
    request.headers["Host"] = host if port in (None, default_port) else f"{host}:{port}"
    return basic
