"""http_proxy module: HTTP calls to the named services the manifest lists, and nowhere else.

The agent names a service (``Scoped("services")``: one the manifest lists, checked before the
body runs) and gives a path relative to it; it never gives a URL. Every request:

* is built from the service's fixed origin and base path plus the checked, re-encoded path
  (``rules``), under one of the service's path prefixes, with an allowed method;
* connects only to an address the network policy accepts (``net.policy``), resolved once and
  pinned for the connection (``net.pinned``), so DNS rebinding and internal addresses are out;
* carries the service's credential, if any, added by the broker inside the request flow
  (``net.auth.CredentialAuth``): neither this code nor the agent holds it, and it is scrubbed
  from results;
* follows a redirect only to the same service and an allowed path, up to ``max_redirects``;
* has its request body capped by ``max_request_bytes`` and its response by ``max_response_bytes``;
  only allowlisted request and response headers pass.

Credential keys are named in the configuration (``auth.key`` per service), so the module reports
them through ``declared_credentials`` and every key named there is required at start-up.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final

import httpx
from pydantic import Field

from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import BackendError, ConfigError, InvalidArgument, ScopeViolation
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import ToolModule, tool
from scoped_mcp.modules.http_proxy import rules
from scoped_mcp.modules.http_proxy.config import HttpProxyConfig, Target
from scoped_mcp.net.auth import CredentialAuth
from scoped_mcp.net.client import Response, make_client, request
from scoped_mcp.net.pinned import PinnedTransport
from scoped_mcp.net.policy import IPAddress, Resolver, SystemResolver, resolve_checked
from scoped_mcp.scoping import Allowlist, Scoped, ScopeStrategy

_log = logging.getLogger(__name__)

REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
QueryParams = dict[str, str | int | float | bool]

# The tools' parameters, shared by get, post, put and delete: type, scope and description.
Service = Annotated[
    str,
    Scoped("services"),
    Field(description='The name of a service the operator configured, e.g. "inventory".'),
]
ServicePath = Annotated[
    str,
    Field(
        description='A path relative to the service, e.g. "/v1/items/42", never a URL. It must '
        'lie under one of the service\'s allowed paths; no "..", "//", "?" or "#" (query values '
        f"go in params); at most {rules.MAX_PATH_CHARS:,} characters."
    ),
]
Params = Annotated[
    QueryParams | None,
    Field(
        description='Query parameters, e.g. {"q": "disk", "limit": 10}: strings, numbers or '
        f"booleans, at most {rules.MAX_QUERY_CHARS:,} characters once encoded."
    ),
]
Headers = Annotated[
    dict[str, str] | None,
    Field(
        description='Request headers, e.g. {"Accept": "application/json"}: accept, '
        "accept-language, content-type, cache-control and the if-* conditionals, plus any the "
        f"operator allows for the service; at most {rules.MAX_HEADERS}, printable ASCII values."
    ),
]
TextBody = Annotated[
    str | None,
    Field(
        description="A text request body (text/plain unless headers set content-type); give "
        "body or json_body, not both. At most the service's max_request_bytes (64 KiB unless "
        "the operator set another)."
    ),
]
JsonBody = Annotated[
    Any,
    Field(
        description='A JSON request body, any JSON value, e.g. {"name": "disk-7"}, sent as '
        "application/json; give json_body or body, not both. Same size limit as body."
    ),
]


class HttpProxyModule(ToolModule):
    """Call allowlisted HTTP services by name, with SSRF protection and injected credentials."""

    name = "http_proxy"
    config_model = HttpProxyConfig
    config: HttpProxyConfig

    def __init__(
        self,
        agent_ctx: AgentContext,
        credentials: CredentialView,
        config: HttpProxyConfig,
        *,
        resolver: Resolver | None = None,
    ) -> None:
        super().__init__(agent_ctx, credentials, config)
        self.resolver: Resolver = resolver or SystemResolver()
        self._targets = {name: Target.build(name, s) for name, s in config.services.items()}
        self._clients: dict[str, httpx.AsyncClient] = {}

    @classmethod
    def declared_credentials(cls, config: Any) -> tuple[Sequence[str], Sequence[str]]:
        """Every ``auth.key`` the services name; all are required."""
        keys = {s.auth.key for s in config.services.values() if s.auth is not None}
        return sorted(keys), ()

    def scope_strategies(self) -> Mapping[str, ScopeStrategy]:
        """``services``: the names under ``config.services``."""
        names = ", ".join(sorted(self._targets))
        refusal = f"service is not in this agent's allowlist (services: {names})"
        return {"services": Allowlist(self._targets, refusal=refusal)}

    async def startup(self) -> None:
        """Open one pinned client per service (no connection is made until the first call)."""
        for name, spec in self.config.services.items():
            target = self._targets[name]
            if target.allow_private:
                _log.warning(
                    "http_proxy service allows private networks (allow_private_networks)",
                    extra={"service": name},
                )
            auth: httpx.Auth = httpx.Auth()
            if spec.auth is not None:
                auth = CredentialAuth(
                    self.credentials,
                    token_key=spec.auth.key,
                    header=spec.auth.header,
                    scheme=spec.auth.scheme,
                )
            verify: ssl.SSLContext | bool = True
            if spec.ca_file is not None:
                verify = _ca_context(name, str(spec.ca_file))
            transport = PinnedTransport(
                self._resolver_for(target), service=name, verify=verify, proxy=self.config.proxy
            )
            self._clients[name] = make_client(auth, self.config, transport=transport)

    async def shutdown(self) -> None:
        """Close every client."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    def _resolver_for(self, target: Target) -> Any:
        async def resolve(host: str, port: int) -> IPAddress:
            return await resolve_checked(
                host,
                port,
                resolver=self.resolver,
                allow_private=target.allow_private,
                service=target.name,
            )

        return resolve

    @tool(mode="read")
    async def get(
        self,
        service: Service,
        path: ServicePath,
        *,
        params: Params = None,
        headers: Headers = None,
    ) -> dict[str, Any]:
        """GET a path of a named service (a path relative to the service, never a URL).

        Returns status, allowed headers and the body: "json" when it is JSON, else "body" as
        text, or "body_base64" for binary content.
        """
        return await self._send(
            "GET", service=service, path=path, params=params, headers=headers, payload=None
        )

    @tool(mode="write")
    async def post(
        self,
        service: Service,
        path: ServicePath,
        *,
        body: TextBody = None,
        json_body: JsonBody = None,
        params: Params = None,
        headers: Headers = None,
    ) -> dict[str, Any]:
        """POST to a path of a named service; send either body (text) or json_body."""
        return await self._send(
            "POST",
            service=service,
            path=path,
            params=params,
            headers=headers,
            payload=(body, json_body),
        )

    @tool(mode="write")
    async def put(
        self,
        service: Service,
        path: ServicePath,
        *,
        body: TextBody = None,
        json_body: JsonBody = None,
        params: Params = None,
        headers: Headers = None,
    ) -> dict[str, Any]:
        """PUT to a path of a named service; send either body (text) or json_body."""
        return await self._send(
            "PUT",
            service=service,
            path=path,
            params=params,
            headers=headers,
            payload=(body, json_body),
        )

    @tool(mode="write")
    async def delete(
        self,
        service: Service,
        path: ServicePath,
        *,
        params: Params = None,
        headers: Headers = None,
    ) -> dict[str, Any]:
        """DELETE a path of a named service."""
        return await self._send(
            "DELETE", service=service, path=path, params=params, headers=headers, payload=None
        )

    def _target(self, service: str, method: str) -> Target:
        target = self._targets[service]  # a name the services strategy accepted
        if method not in target.methods:
            raise ScopeViolation(f"{service}: method {method} is not allowed for this service")
        return target

    async def _send(
        self,
        method: str,
        *,
        service: str,
        path: str,
        params: Mapping[str, object] | None,
        headers: Mapping[str, str] | None,
        payload: tuple[str | None, Any] | None,
    ) -> dict[str, Any]:
        target = self._target(service, method)
        segments, trailing = rules.path_segments(path)
        if not rules.under_prefix(segments, target.prefixes):
            raise ScopeViolation(f"{service}: path is outside the service's allowed paths")
        sent = rules.request_headers(headers, allowed=target.request_headers)
        content = self._body(target, payload, sent)
        sent["accept-encoding"] = "identity"
        url = target.url(segments, trailing, rules.query_string(params))
        return await self._exchange(target, method, url, sent, content)

    @staticmethod
    def _body(
        target: Target, payload: tuple[str | None, Any] | None, headers: dict[str, str]
    ) -> bytes | None:
        if payload is None:
            return None
        text, data = payload
        if text is not None and data is not None:
            raise InvalidArgument("send either body or json_body, not both")
        if text is None and data is None:
            return None
        try:
            if text is not None:
                content = text.encode("utf-8", "strict")
                headers.setdefault("content-type", "text/plain; charset=utf-8")
            else:
                content = json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
                headers.setdefault("content-type", "application/json")
        except (TypeError, ValueError):  # includes UnicodeEncodeError (lone surrogates)
            raise InvalidArgument("the body must be valid Unicode text or plain JSON") from None
        if len(content) > target.max_request_bytes:
            raise InvalidArgument(f"request body is larger than {target.max_request_bytes} bytes")
        return content

    async def _exchange(
        self, target: Target, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> dict[str, Any]:
        client = self._clients.get(target.name)
        if client is None:
            raise RuntimeError("http_proxy used before startup()")
        for _ in range(self.config.max_redirects + 1):
            answer = await request(
                client, method, url, self.config, service=target.name, content=body,
                headers=headers,
            )  # fmt: skip
            location = answer.headers.get("Location")
            if answer.status not in REDIRECTS or location is None:
                return _result(target, answer)
            url = _redirect_target(target, url, location)
            if answer.status == 303 or (answer.status in (301, 302) and method == "POST"):
                method, body = "GET", None
                headers.pop("content-type", None)
        raise BackendError(f"{target.name}: more than {self.config.max_redirects} redirects")


def _ca_context(service: str, path: str) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"modules.http_proxy.config.services.{service}.ca_file: cannot be loaded "
            f"({type(exc).__name__})",
            fix="point ca_file at a readable PEM file of CA certificates",
        ) from None


def _redirect_target(target: Target, current: str, location: str) -> str:
    """The URL a redirect names, if it stays on the same service and allowed paths."""
    refused = ScopeViolation(f"{target.name}: redirect to a location outside the service refused")
    if not location.isascii() or any(c.isspace() or ord(c) < 32 for c in location):
        raise refused
    try:
        joined = httpx.URL(current).join(location)
    except httpx.InvalidURL:
        raise refused from None
    port = joined.port or {"http": 80, "https": 443}.get(joined.scheme)
    same = (joined.scheme, joined.host, port) == (target.scheme, target.host, target.port)
    if not same or joined.userinfo:
        raise refused
    raw = joined.raw_path.decode("ascii")
    path, _, query = raw.partition("?")
    relative = target.relative(path)
    if relative is None:
        raise refused
    try:
        segments, trailing = rules.path_segments(relative)
    except (ScopeViolation, InvalidArgument):
        raise refused from None
    if not rules.under_prefix(segments, target.prefixes):
        raise refused
    return target.url(segments, trailing, query)


def _result(target: Target, answer: Response) -> dict[str, Any]:
    result: dict[str, Any] = {
        "status": answer.status,
        "headers": rules.response_headers(
            answer.headers.multi_items(), allowed=target.response_headers
        ),
    }
    if answer.status in REDIRECTS:
        result["note"] = "redirect without a Location header"
    content_type = answer.headers.get("Content-Type", "").lower()
    if "json" in content_type:
        parsed = answer.json()
        if parsed is not None or answer.body.strip() == b"null":
            result["json"] = parsed
            return result
    try:
        result["body"] = answer.body.decode("utf-8")
    except UnicodeDecodeError:
        result["body_base64"] = base64.b64encode(answer.body).decode("ascii")
    return result
