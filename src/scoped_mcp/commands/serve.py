"""``scoped-mcp [serve] --manifest M``: serve one agent over stdio until stdin closes or a signal.

The agent's identity and manifest are checked before the MCP stack is imported, so a misconfigured
agent is refused fast. ``server.run`` owns the server's life from there.
"""

from __future__ import annotations

import logging
import os

from scoped_mcp.errors import ManifestError, ScopedMCPError

EXIT_OK = 0


def run(path: str) -> int:
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

    import anyio

    from scoped_mcp import server

    try:
        anyio.run(lambda: server.run(manifest, agent_ctx, os.environ, redactor=redactor))
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
