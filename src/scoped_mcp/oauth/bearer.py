"""The ``httpx2.Auth`` that puts the broker-held OAuth access token on each upstream request.

On a 401 the token is replaced once and the request sent again. When no token can be had (the
grant expired, the token endpoint is down), the request goes out with no credential at all: the
upstream's 401 then fails the call, and ``mcp_proxy`` answers with the source's message. The
header is removed from the request once the exchange is over (the object outlives the call).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Generator

import httpx2

from scoped_mcp.errors import BackendError
from scoped_mcp.oauth.source import TokenSource

_log = logging.getLogger(__name__)


class OAuthBearer(httpx2.Auth):
    """Bearer authentication from a ``TokenSource``, retried once after a 401."""

    def __init__(self, source: TokenSource) -> None:
        self._source = source

    def __repr__(self) -> str:
        return "OAuthBearer(<sealed>)"

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response]:
        raise RuntimeError("OAuthBearer works with httpx2.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        used = await self._authorize(request)
        try:
            response = yield request
            if response.status_code == 401 and used is not None:
                # On failure the retry below goes out without a token and fails the call.
                with contextlib.suppress(BackendError):
                    await self._source.unauthorized(used)
                await self._authorize(request)
                yield request
        finally:
            request.headers.pop("Authorization", None)

    async def _authorize(self, request: httpx2.Request) -> str | None:
        request.headers.pop("Authorization", None)
        try:
            value, used = await self._source.header()
        except BackendError as exc:
            _log.warning("no oauth access token for the upstream", extra={"error": exc.message})
            return None
        request.headers["Authorization"] = value.decode("ascii")
        return used
