"""``RateLimiter``: what the pipeline's ``limit_rate`` step asks before a call may cost anything."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from scoped_mcp.errors import ManifestError
from scoped_mcp.identity import AgentContext
from scoped_mcp.limits.buckets import BucketSet
from scoped_mcp.limits.config import RateLimitsSpec, is_url
from scoped_mcp.limits.errors import RateLimited
from scoped_mcp.limits.local import LocalBuckets
from scoped_mcp.limits.store import BucketStore

if TYPE_CHECKING:
    from scoped_mcp.credentials.broker import CredentialBroker


class RateLimiter:
    """Admits a call when every bucket that applies to its tool has a token, taking one from each.

    A refusal (``RateLimited``) says which limit and how long to wait; a store that cannot answer
    raises ``LimiterUnavailable``. Either way no token is taken.
    """

    def __init__(self, buckets: BucketSet, store: BucketStore) -> None:
        self._buckets = buckets
        self._store = store

    def __repr__(self) -> str:
        return f"RateLimiter({self._store!r})"

    @classmethod
    def unlimited(cls) -> RateLimiter:
        """A limiter with no buckets: admits every call without asking any store."""
        return cls(BucketSet(RateLimitsSpec()), LocalBuckets())

    async def admit(self, module_key: str, tool_name: str) -> None:
        """Return when the call may run; raise when a bucket refuses or the store is down."""
        wanted = self._buckets.for_tool(module_key, tool_name)
        if not wanted:
            return
        refusal = await self._store.take(wanted)
        if refusal is not None:
            raise RateLimited(refusal.bucket.describe(), refusal.wait)

    async def aclose(self) -> None:
        """Close the store's connections (the shared store's Redis client)."""
        await self._store.aclose()


def build_limiter(
    spec: RateLimitsSpec, agent_ctx: AgentContext, *, broker: CredentialBroker
) -> RateLimiter:
    """The limiter a manifest asks for: in-process, or shared through Redis (imported only then)."""
    buckets = BucketSet(spec)
    if spec.shared is None or buckets.empty:
        return RateLimiter(buckets, LocalBuckets())
    from scoped_mcp.limits.plan import broker_url
    from scoped_mcp.limits.shared import RedisBuckets

    require_redis()

    literal = spec.shared.strip()

    async def literal_url() -> str:
        return literal

    url = literal_url if is_url(literal) else broker_url(broker)
    store = RedisBuckets(url, agent_type=agent_ctx.agent_type, timeout=spec.timeout)
    return RateLimiter(buckets, store)


def require_redis() -> None:
    """Stop start-up when ``rate_limits.shared`` is set but the Redis client is not installed."""
    try:
        found = importlib.util.find_spec("redis") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ManifestError(
            "rate_limits.shared: the Redis client (the redis package) is not installed",
            fix="pip install 'scoped-mcp[redis]', or remove rate_limits.shared to keep the "
            "limits in-process",
        )
