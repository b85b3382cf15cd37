"""``scoped-mcp [serve] --manifest M [--http ADDR]``: serve one agent until its end or a signal.

Over stdio by default; ``--http [HOST:]PORT`` or ``--http unix:PATH`` serves streamable HTTP
instead. The agent's identity, the manifest and the listening address are checked before the MCP
stack is imported, so a misconfigured agent is refused fast. ``server.run`` owns the server's life
from there.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from scoped_mcp.errors import ManifestError, ScopedMCPError

EXIT_OK = 0


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """The ``--http`` options of ``serve`` as given on the command line."""

    address: str
    allow_remote: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None


def run(path: str, *, http: HttpOptions | None = None) -> int:
    """Serve the agent named by ``AGENT_ID``/``AGENT_TYPE`` with the manifest at ``path``."""
    from scoped_mcp.hardening import harden_process
    from scoped_mcp.identity import AgentContext
    from scoped_mcp.manifest import load
    from scoped_mcp.opslog import configure
    from scoped_mcp.redaction import Redactor

    not_applied = harden_process()
    redactor = Redactor()
    configure(redactor)
    if not_applied:
        logging.getLogger(__name__).warning(
            "hardening not applied", extra={"measures": not_applied}
        )
    agent_ctx = AgentContext.from_env(os.environ)
    manifest = load(path)
    check_agent_type(manifest.agent_type, agent_ctx.agent_type, path)
    serving = None
    if http is not None:
        from scoped_mcp.http.bind import HttpServing, parse_bind

        bind = parse_bind(
            http.address,
            allow_remote=http.allow_remote,
            tls_cert=http.tls_cert,
            tls_key=http.tls_key,
        )
        if not bind.loopback:
            logging.getLogger(__name__).warning(
                "serving beyond this machine (--allow-remote)", extra={"address": str(bind)}
            )
        serving = HttpServing(bind, manifest.serve.http, agent_ctx.agent_id)

    import anyio

    from scoped_mcp import server

    try:
        anyio.run(
            lambda: server.run(manifest, agent_ctx, os.environ, redactor=redactor, http=serving)
        )
    except ScopedMCPError as exc:
        # A module's startup may fail quoting a credential it was given: the CLI prints this.
        exc.message = redactor.scrub(exc.message)
        exc.fix = redactor.scrub(exc.fix) if exc.fix else exc.fix
        exc.args = (exc.message,)
        raise
    return EXIT_OK


def check_agent_type(manifest_type: str, env_type: str, path: str) -> None:
    """Refuse to serve an agent whose ``AGENT_TYPE`` is not the manifest's ``agent_type``."""
    if manifest_type != env_type:
        raise ManifestError(
            f"{path}: agent_type is {manifest_type!r} but AGENT_TYPE is {env_type!r}",
            fix="start this agent with the manifest written for its type, or correct AGENT_TYPE",
        )
