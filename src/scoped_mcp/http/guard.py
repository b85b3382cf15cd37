"""The gate every HTTP request passes before the MCP endpoint: Host, Origin, token, rate limit.

Order matters and is fixed here: a client blocked for repeated failures gets 429 without its
token being looked at; a foreign Host (421) or Origin (403) is refused next, because a browser
page that DNS-rebinds a name to 127.0.0.1 must not reach the server even with a guessed token;
then the credentials, as the ``Authenticator`` (``auth.py``) decides: 401 with no detail, or 403
for a valid JWT naming another agent. ``/healthz`` needs no token and says only ready or not
ready; the authenticator's public documents (RFC 9728 metadata) need none either. Every refusal
but a 429 is audited with the client address (the failures that led to a 429 were); a 503
(the bearer token or the issuer's keys unavailable) is not counted as the client's failure.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from scoped_mcp.audit import records
from scoped_mcp.audit.log import AuditLog
from scoped_mcp.http.auth import Authenticator
from scoped_mcp.http.bind import Bind, is_loopback

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
HEALTH_PATH = "/healthz"
MAX_TRACKED_CLIENTS = 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """A client failing ``failures`` times within ``window`` seconds is refused (429) until the
    window ends."""

    failures: int = 10
    window: float = 60.0


class FailureLimiter:
    """Counts refused requests per client host in fixed windows; bounded in memory."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def _window(self, client: str) -> tuple[float, int]:
        now = self._clock()
        started, count = self._windows.get(client, (now, 0))
        if now - started >= self._limits.window:
            started, count = now, 0
        return started, count

    def blocked(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None if it may now."""
        started, count = self._window(client)
        if count < self._limits.failures:
            return None
        return max(0.0, started + self._limits.window - self._clock())

    def failed(self, client: str) -> None:
        """Count one failure of ``client``."""
        started, count = self._window(client)
        self._windows[client] = (started, count + 1)
        self._windows.move_to_end(client)
        while len(self._windows) > MAX_TRACKED_CLIENTS:
            self._windows.popitem(last=False)


def peer_host(scope: Scope) -> str:
    """The peer's host without its port (what failures are counted by), or ``unix``."""
    client = scope.get("client")
    return str(client[0]) if client else "unix"


def client_of(scope: Scope) -> str:
    """The peer address of a request (``host:port``), or ``unix`` for a unix socket."""
    client = scope.get("client")
    if not client:
        return "unix"
    return f"{client[0]}:{client[1]}"


class Guard:
    """ASGI middleware in front of the whole app; see the module docstring for the order."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        bind: Bind,
        auth: Authenticator,
        audit: AuditLog,
        ready: Callable[[], bool],
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
        limits: Limits | None = None,
    ) -> None:
        self._app = app
        self._bind = bind
        self._auth = auth
        self._documents = auth.documents()
        self._audit = audit
        self._ready = ready
        self._hosts = {h.lower() for h in allowed_hosts}
        self._origins = {o.rstrip("/").lower() for o in allowed_origins}
        self._limiter = FailureLimiter(limits or Limits())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        client, peer = client_of(scope), peer_host(scope)
        headers = _headers(scope)
        # Counted by host: each new connection has a new port.
        wait = self._limiter.blocked(peer)
        if wait is not None:
            await _respond(send, 429, {"retry-after": str(int(wait) + 1)})
            return
        refusal = self._refusal(scope, headers)
        if refusal is None and scope.get("path") == HEALTH_PATH:
            ready = self._ready()
            await _respond(send, 200 if ready else 503, body=b"ready" if ready else b"not ready")
            return
        document = self._documents.get(scope.get("path", ""))
        if refusal is None and document is not None and scope.get("method") == "GET":
            await _respond(send, 200, body=document, content_type="application/json")
            return
        if refusal is None:
            refusal = await self._auth.refusal(headers.get("authorization"))
        if refusal is not None:
            status, reason = refusal
            if status != 503:
                self._limiter.failed(peer)
            self._audit.write(records.http_refused(client=client, status=status, reason=reason))
            await _respond(send, status, self._auth.challenge(status))
            return
        await self._app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, reason) when Host or Origin is not this server's, else None."""
        host = headers.get("host", "")
        if self._bind.uds is None and not self._host_allowed(host):
            return 421, "foreign host"
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, scope, host):
            return 403, "foreign origin"
        return None

    def _host_allowed(self, host: str) -> bool:
        try:
            name = urlsplit(f"//{host}").hostname or ""
        except ValueError:  # not a host at all ("[", "x]"): foreign, not a server error
            return False
        if name in self._hosts or host.lower() in self._hosts:
            return True
        if self._bind.host and name == self._bind.host.strip("[]").lower():
            return True
        return self._bind.loopback and is_loopback(name)

    def _origin_allowed(self, origin: str, scope: Scope, host: str) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self._origins:
            return True
        # The server's own origin is the only one allowed without configuration.
        return bool(host) and origin == f"{scope.get('scheme', 'http')}://{host.lower()}"


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers, names lower-cased; a repeated header keeps its first value."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


async def _respond(
    send: Send,
    status: int,
    headers: dict[str, str] | None = None,
    *,
    body: bytes = b"",
    content_type: str = "text/plain",
) -> None:
    """A plain response with no detail beyond the status."""
    raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    raw += [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
