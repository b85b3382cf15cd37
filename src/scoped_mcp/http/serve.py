"""Serving the runtime over HTTP with uvicorn, on a socket we opened, until a signal.

We open the listening socket ourselves (``bind.open_socket``): a unix socket is then 0600 from
the start (uvicorn would make it 0666), and a busy port is a start-up refusal with a fix. Signals
are ours too, not uvicorn's: its handler re-raises the signal once it has stopped, which would end
the process before ``server.run`` stops the modules and revokes the leases.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

import anyio
import uvicorn

from scoped_mcp.errors import ConfigError
from scoped_mcp.http.app import Readiness, build_app
from scoped_mcp.http.bind import Bind, open_socket
from scoped_mcp.http.deadline import DeadlineH11Protocol
from scoped_mcp.http.token import KEY, MIN_TOKEN_BYTES, MODULE
from scoped_mcp.manifest import HttpServeSpec

if TYPE_CHECKING:
    from scoped_mcp.server import Runtime

_log = logging.getLogger(__name__)
GRACEFUL_SECONDS = 3
MAX_CONCURRENCY = 256
"""Connections and requests at once; beyond it uvicorn answers 503 (sessions are fewer still)."""


async def check_token(runtime: Runtime) -> None:
    """Refuse to serve with a token short enough to guess; warn when it merely looks weak."""
    from scoped_mcp.http.token_strength import STRONG_BITS, judge

    async with runtime.broker.open(MODULE, KEY) as plain:
        length = len(plain.bytes_view)
        weak = judge(plain.bytes_view).weak  # no copy of the value is made
    if length < MIN_TOKEN_BYTES:
        raise ConfigError(
            f"serve.http.token: the token is {length} bytes; at least {MIN_TOKEN_BYTES} are needed",
            fix="generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
    if weak:
        _log.warning(
            "the HTTP bearer token looks weak",
            extra={"estimated_bits_under": STRONG_BITS, "fix": "secrets.token_urlsafe(32)"},
        )


def _config(app: object, bind: Bind) -> uvicorn.Config:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_config=None,
        access_log=False,
        proxy_headers=False,  # the peer address is the client; nothing forwarded is trusted
        server_header=False,
        lifespan="on",
        ws="none",
        http=DeadlineH11Protocol,  # request headers within a deadline; h11 only
        limit_concurrency=MAX_CONCURRENCY,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        ssl_certfile=bind.tls_cert,
        ssl_keyfile=bind.tls_key,
    )
    try:
        config.load()
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load the TLS certificate or key ({type(exc).__name__})",
            fix="pass --tls-cert and --tls-key as readable PEM files that belong together",
        ) from None
    return config


async def serve_http(
    runtime: Runtime, *, bind: Bind, spec: HttpServeSpec, agent_id: str = ""
) -> str:
    """Serve until SIGTERM or SIGINT; returns the reason it stopped, for ``server_stop``.

    ``agent_id`` is what a JWT's agent claim must equal (``serve.http.auth: jwt``)."""
    if spec.auth == "token":
        await check_token(runtime)
    readiness = Readiness()
    app = build_app(runtime, bind=bind, spec=spec, readiness=readiness, agent_id=agent_id)
    config = _config(app, bind)
    sock = open_socket(bind)
    server = uvicorn.Server(config)
    reason = "http server stopped"
    try:
        async with anyio.create_task_group() as group:

            async def watch_signals() -> None:
                nonlocal reason
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for signum in signals:
                        _log.info("stopping on signal", extra={"signal": signum.name})
                        reason = f"signal {signum.name}"
                        server.should_exit = True
                        return

            group.start_soon(watch_signals)
            group.start_soon(runtime.broker.maintain)
            if runtime.approvals is not None:
                await group.start(runtime.approvals.serve)
            _log.info("listening", extra={"address": str(bind)})
            # _serve is serve without uvicorn's signal handlers (see the module docstring).
            await server._serve(sockets=[sock])
            group.cancel_scope.cancel()
    finally:
        sock.close()
        if bind.uds is not None:
            bind.uds.unlink(missing_ok=True)
    return reason
