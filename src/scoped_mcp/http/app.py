"""The ASGI app served over HTTP: the MCP SDK's streamable HTTP session manager behind the guard.

The session manager is the SDK's own (``StreamableHTTPSessionManager``), built here rather than
through ``FastMCP.http_app`` because only the SDK's constructor bounds the number of sessions;
FastMCP's request-context middleware (``create_base_app``) still wraps it, so tools see the HTTP
request as they would under ``http_app``. The SDK's own DNS-rebinding check is off: the guard
validates Host and Origin before anything else runs, with one allow-list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastmcp.server.http import StreamableHTTPASGIApp, create_base_app
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route

from scoped_mcp.errors import ConfigError
from scoped_mcp.http.auth import Authenticator, TokenAuth
from scoped_mcp.http.bind import Bind
from scoped_mcp.http.guard import ASGIApp, Guard
from scoped_mcp.http.token import TokenCheck
from scoped_mcp.manifest import HttpServeSpec

if TYPE_CHECKING:
    from scoped_mcp.server import Runtime

MCP_PATH = "/mcp"


@dataclass
class Readiness:
    """Whether the MCP endpoint is serving: true between the app's start-up and shutdown."""

    ready: bool = False

    def __call__(self) -> bool:
        return self.ready


def authenticator(runtime: Runtime, spec: HttpServeSpec, *, agent_id: str) -> Authenticator:
    """The manifest's scheme: the shared bearer token, or JWTs from ``serve.http.jwt``."""
    if spec.auth == "jwt" and spec.jwt is not None:
        try:
            from scoped_mcp.http.jwt_auth import JwtAuth
        except ImportError:
            raise ConfigError(
                "serve.http.auth: jwt needs PyJWT and httpx",
                fix="pip install 'scoped-mcp[jwt]'",
            ) from None
        return JwtAuth(spec.jwt, agent_id=agent_id)
    return TokenAuth(TokenCheck(runtime.broker, overlap=spec.token_overlap_seconds))


def build_app(
    runtime: Runtime, *, bind: Bind, spec: HttpServeSpec, readiness: Readiness, agent_id: str
) -> ASGIApp:
    """The whole HTTP app for ``runtime``: guard, then FastMCP's request context, then MCP."""
    manager = StreamableHTTPSessionManager(
        app=runtime.mcp._mcp_server,
        max_sessions=spec.max_sessions,
        session_idle_timeout=spec.session_idle_seconds,
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        # The manager enters the FastMCP server's lifespan, as run_stdio does for stdio.
        async with manager.run():
            readiness.ready = True
            try:
                yield
            finally:
                readiness.ready = False

    app = create_base_app(
        routes=[Route(MCP_PATH, endpoint=StreamableHTTPASGIApp(manager))],
        middleware=[],
        lifespan=lifespan,
    )
    app.state.fastmcp_server = runtime.mcp
    app.state.transport_type = "streamable-http"
    return Guard(
        app,
        bind=bind,
        auth=authenticator(runtime, spec, agent_id=agent_id),
        audit=runtime.audit,
        ready=readiness,
        allowed_hosts=spec.allowed_hosts,
        allowed_origins=spec.allowed_origins,
    )
