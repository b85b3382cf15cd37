"""An httpx transport that connects only to addresses the network policy has checked.

For each request the host is resolved once (``policy.resolve_checked``) and the connection is
made to that very address: the URL's host is replaced by the checked IP just before the request
reaches the connection pool, while the ``Host`` header (set when the request was built) and the
TLS server name (the ``sni_hostname`` extension, which also drives certificate checks) keep the
name. The pool never resolves a name itself, so there is no window between check and connect.
With a forward proxy (``config.proxy``) the host is checked the same way first; plain HTTP is
then sent to the proxy as an absolute URI naming the checked address, HTTPS as a CONNECT to the
name (the proxy resolves it again).

Responses with a ``Content-Encoding`` are refused: requests ask for ``identity``, and a body that
is decompressed chunk by chunk could grow far past the response cap before it is counted.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

from scoped_mcp.errors import BackendError
from scoped_mcp.net._httpx import httpx
from scoped_mcp.net.policy import IPAddress

ResolveChecked = Callable[[str, int], Awaitable[IPAddress]]
_DEFAULT_PORTS = {"http": 80, "https": 443}


class PinnedTransport(httpx.AsyncBaseTransport):
    """Sends each request to the address ``resolve`` returns for its host (already checked)."""

    def __init__(
        self,
        resolve: ResolveChecked,
        *,
        service: str,
        max_connections: int = 4,
        verify: ssl.SSLContext | bool = True,
        proxy: str | None = None,
    ) -> None:
        self._resolve = resolve
        self._service = service
        self._proxied = proxy is not None
        self._inner = httpx.AsyncHTTPTransport(
            verify=verify,
            proxy=proxy,
            trust_env=False,
            retries=0,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def __repr__(self) -> str:
        return f"PinnedTransport({self._service!r})"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in _DEFAULT_PORTS or not url.host:
            raise BackendError(f"{self._service}: only http and https are used")
        port = url.port or _DEFAULT_PORTS[url.scheme]
        address = await self._resolve(url.host, port)
        if url.scheme == "https" and self._proxied:
            # A tunnel's TLS is checked against the URL's host, so the proxy is asked to CONNECT
            # to the name (checked above; it resolves it again: see docs/threat-model.md).
            return await self._checked(await self._inner.handle_async_request(request))
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": url.host}
        # Through a proxy too: an absolute-URI request names the checked address itself.
        request.url = url.copy_with(host=str(address))
        return await self._checked(await self._inner.handle_async_request(request))

    async def _checked(self, response: httpx.Response) -> httpx.Response:
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            await response.aclose()
            raise BackendError(f"{self._service}: a compressed response was refused")
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
