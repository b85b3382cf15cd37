"""The one HTTP client every HTTP-backed module uses, and the one place httpx errors are mapped.

Invariants a module gets by using ``make_client`` and ``request``:

* Redirects are never followed, proxies and ``.netrc`` from the environment are never used
  (``trust_env=False``); a proxy is used only when the module's ``config.proxy`` names one.
  Connections are pooled up to a small limit.
* Every call has per-phase timeouts and one overall deadline, so a server that drips bytes cannot
  hold a call open.
* A response is read as a stream and abandoned past ``max_response_bytes``.
* The base URL and the bearer token come from the credential broker inside the request flow
  (``auth.CredentialAuth``): the module builds requests against a placeholder origin and never
  holds either value. The broker's plaintext exists only while the request is being prepared.
* Failures become a short ``BackendError`` with the status code (and ``Retry-After`` for 429),
  never a response body, an exception text or a URL: a server that echoes the token or the webhook
  URL back cannot make us repeat it.

httpx is imported here, and this file is imported only by the modules that need it, so a manifest
without HTTP modules never loads httpx.
"""

from __future__ import annotations

import email.utils
import math
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import anyio
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, field_validator

from scoped_mcp import __version__
from scoped_mcp.errors import BackendError
from scoped_mcp.net._httpx import httpx

PLACEHOLDER_ORIGIN: Final = "http://broker.invalid"
"""Requests are built against this origin; ``auth.CredentialAuth`` swaps in the real one."""
MAX_RETRY_AFTER: Final = 86_400
_RETRY_SECONDS: Final = re.compile(r"[0-9]{1,9}")


class HttpConfig(BaseModel):
    """Network limits shared by every HTTP-backed module's ``config``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Overall time limit for one request, in seconds."
    )
    max_response_bytes: int = Field(
        default=64 * 1024,
        gt=0,
        le=16 * 1024 * 1024,
        description="Largest response body read; a larger one fails the call.",
    )
    proxy: str | None = Field(
        default=None,
        description="http://host:port of a forward proxy to send requests through (never taken "
        "from the environment); targets are still checked by the network policy first.",
    )

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be http://host:port or https://host:port")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not hold credentials (a manifest is not a secret store)")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must be only scheme, host and port")
        return value


@dataclass(frozen=True, slots=True)
class Response:
    """What a module may look at: status, a few headers, and the (capped) body."""

    status: int
    headers: httpx.Headers
    body: bytes = field(repr=False)

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON we can hand on.

        pydantic's parser refuses what the MCP layer could not send back out: nesting deeper than
        200 levels (the stdlib parser would raise ``RecursionError`` instead) and strings that
        escape a lone surrogate.
        """
        try:
            return pydantic_core.from_json(self.body)
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def make_client(
    auth: httpx.Auth,
    config: HttpConfig,
    *,
    max_connections: int = 4,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An ``AsyncClient`` with our limits; open it in ``startup`` and close it in ``shutdown``.

    ``transport`` replaces httpx's default one (``http_proxy`` connects only to checked addresses)
    and then carries ``config.proxy`` itself: httpx would otherwise mount a proxy transport in
    front of it, and requests would bypass the checks.
    """
    timeout = config.timeout_s
    return httpx.AsyncClient(
        transport=transport,
        proxy=config.proxy if transport is None else None,
        base_url=PLACEHOLDER_ORIGIN,
        auth=auth,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        follow_redirects=False,
        trust_env=False,
        # Uncompressed only: the size cap must count what arrives, not what it inflates to.
        headers={"User-Agent": f"scoped-mcp/{__version__}", "Accept-Encoding": "identity"},
    )


class HttpService:
    """One backend's client and limits; ``open`` in a module's startup, ``close`` in shutdown."""

    def __init__(self, service: str, auth: httpx.Auth, config: HttpConfig) -> None:
        self.service = service
        self.config = config
        self._auth = auth
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"HttpService({self.service!r})"

    async def open(self) -> None:
        self._client = make_client(self._auth, self.config)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """``request`` through this service's client."""
        if self._client is None:
            raise RuntimeError(f"{self.service}: HTTP client used before startup()")
        return await request(
            self._client,
            method,
            path,
            self.config,
            service=self.service,
            payload=payload,
            content=content,
            headers=headers,
        )

    def error(self, response: Response, *, code: str | None = None) -> BackendError:
        """``status_error`` for this service."""
        return status_error(response, self.service, code=code)


async def request(
    client: httpx.AsyncClient,
    method: str,
    path: str | httpx.URL,
    config: HttpConfig,
    *,
    service: str,
    payload: Any = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Send one request and read at most ``max_response_bytes`` of the answer.

    ``path`` is relative to the credential-held base URL (or an absolute ``httpx.URL``);
    ``content`` is a raw body sent instead of a JSON ``payload``. Every httpx error is mapped here.
    """
    try:
        with anyio.fail_after(config.timeout_s):
            stream = client.stream(method, path, json=payload, content=content, headers=headers)
            async with stream as answer:
                body = await _read_capped(answer, config.max_response_bytes, service)
                return Response(answer.status_code, answer.headers, body)
    except TimeoutError:
        raise BackendError(f"{service}: no answer within {config.timeout_s:g} s") from None
    except httpx.TimeoutException:
        raise BackendError(f"{service}: no answer within {config.timeout_s:g} s") from None
    except httpx.ConnectError as exc:
        raise BackendError(f"{service}: {_connect_failure(exc)}") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        raise BackendError(f"{service}: the configured URL cannot be used") from None
    except httpx.HTTPError:
        raise BackendError(f"{service}: the connection failed during the request") from None


async def _read_capped(answer: httpx.Response, limit: int, service: str) -> bytes:
    if answer.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        raise BackendError(f"{service}: the server sent a compressed response, which is refused")
    declared = answer.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BackendError(f"{service}: the response is larger than {limit} bytes")
    chunks = bytearray()
    async for chunk in answer.aiter_bytes():
        chunks += chunk
        if len(chunks) > limit:
            raise BackendError(f"{service}: the response is larger than {limit} bytes")
    return bytes(chunks)


def _connect_failure(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return "the server's host name did not resolve"
        seen = seen.__cause__ or seen.__context__
    return "could not connect to the server"


_STATUS_TEXT: Final = {
    400: "the request was rejected as malformed",
    401: "the credential was refused",
    403: "the credential is not allowed to do this",
    404: "not found (check the configured URL or name)",
    410: "gone (the channel or webhook was removed)",
    413: "the message is too large for the server",
}


def status_error(response: Response, service: str, *, code: str | None = None) -> BackendError:
    """A short error for a non-2xx answer: status, a safe error code, and Retry-After for 429.

    ``code`` must come from a fixed vocabulary checked by the caller (``safe_code``), never raw
    response text.
    """
    status = response.status
    detail = f" ({code})" if code else ""
    if status == 429:
        wait = retry_after(response.headers.get("Retry-After"))
        when = f"retry after {wait} s" if wait is not None else "retry later"
        return BackendError(f"{service}: rate limited (HTTP 429){detail}; {when}")
    if 300 <= status < 400:
        return BackendError(f"{service}: HTTP {status} redirect refused (redirects are off)")
    if status >= 500:
        return BackendError(f"{service}: server error (HTTP {status}){detail}")
    text = _STATUS_TEXT.get(status, "the request failed")
    return BackendError(f"{service}: {text} (HTTP {status}){detail}")


def retry_after(value: str | None, *, now: float | None = None) -> int | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), or None if unusable."""
    if not value:
        return None
    value = value.strip()
    if _RETRY_SECONDS.fullmatch(value):
        return min(int(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return max(0, min(math.ceil(delta), MAX_RETRY_AFTER))


def safe_code(value: Any, pattern: re.Pattern[str]) -> str | None:
    """``value`` if it is a string that fully matches ``pattern`` (an error-code vocabulary)."""
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    return None
