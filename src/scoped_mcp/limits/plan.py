"""The shared limiter's Redis URL as a broker credential, when ``shared`` is a secret reference.

Planned under the pseudo-module ``rate_limits.shared`` (no module name has a dot), so the start-up
preflight proves it, ``creds check`` lists it, the broker holds it sealed and re-reads it on the
credential TTL, and the redactor scrubs it (and its ``user:password@``) from everything we write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from scoped_mcp.credentials import refs
from scoped_mcp.credentials.backends import Catalog
from scoped_mcp.credentials.broker import CredentialBroker
from scoped_mcp.credentials.plan import KeyPlan
from scoped_mcp.errors import ManifestError
from scoped_mcp.identity import AgentContext
from scoped_mcp.limits.config import RateLimitsSpec, is_url

MODULE = "rate_limits.shared"
KEY = "RATE_LIMIT_REDIS_URL"


def limit_plans(
    spec: RateLimitsSpec, agent_ctx: AgentContext, catalog: Catalog
) -> dict[str, dict[str, KeyPlan]]:
    """The broker plan of the shared limiter's URL; empty when there is no reference to read."""
    text = spec.shared
    if text is None or is_url(text):
        return {}
    where = "rate_limits.shared"
    scheme, path, field = refs.split(text, agent_ctx, where=where)
    backend = catalog.find(scheme)
    if backend is None:
        raise ManifestError(
            f"{where}: no secret backend for {scheme!r} references",
            fix=f"name the Redis URL's secret with one of {', '.join(catalog.schemes)}, or "
            "write a redis:// URL without a password",
        )
    ref = backend.parse_ref(scheme, path, field, text=text, where=where)
    return {MODULE: {KEY: KeyPlan(MODULE, KEY, ref, required=True)}}


def broker_url(broker: CredentialBroker) -> Callable[[], Awaitable[str]]:
    """Reads the URL from the broker when the shared store connects."""

    async def read() -> str:
        async with broker.open(MODULE, KEY) as plain:
            return plain.text()

    return read
