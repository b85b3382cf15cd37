"""The shared bucket store: every process of one agent type takes tokens from the same Redis.

Keys are ``scoped-mcp:rl:{AGENT_TYPE}:BUCKET`` (the braces are literal: a Redis Cluster hash tag,
so the buckets of one call share a slot). The URL is read when the first call needs it, through
the broker when it is a secret reference. Fails closed: any failure to ask Redis within the
timeout (down, refused, wrong password, slow) refuses the call; the client is dropped and the next
call connects afresh, so service resumes as soon as Redis does and a rotated URL is read again.

This file is the one boundary of the ``redis`` library: no Redis error text leaves it (a
connection error can name the URL), and no repr of the client, which shows the password, is made.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from scoped_mcp.errors import CredentialError
from scoped_mcp.limits.buckets import Bucket
from scoped_mcp.limits.errors import LimiterUnavailable
from scoped_mcp.limits.script import TAKE
from scoped_mcp.limits.store import BucketStore, Refusal

_log = logging.getLogger(__name__)
UrlSource = Callable[[], Awaitable[str]]
"""Returns the Redis URL: read from the broker, or the manifest's literal one."""


def namespace(agent_type: str) -> str:
    """The key prefix of one agent type's buckets."""
    return f"scoped-mcp:rl:{{{agent_type}}}:"


class RedisBuckets(BucketStore):
    """Buckets kept in Redis, checked and taken by one Lua script."""

    def __init__(self, url: UrlSource, *, agent_type: str, timeout: float) -> None:
        self._url = url
        self._prefix = namespace(agent_type)
        self._timeout = timeout
        self._client: Any = None
        self._script: Any = None
        self._connecting = anyio.Lock()

    def __repr__(self) -> str:
        return f"RedisBuckets({self._prefix!r}, <url hidden>)"

    async def take(self, buckets: Sequence[Bucket]) -> Refusal | None:
        args: list[str] = []
        for bucket in buckets:
            args += [str(bucket.capacity), repr(bucket.rate.per_second)]
        keys = [self._prefix + bucket.name for bucket in buckets]
        script, client = await self._connected()
        try:
            # Connecting, loading the script and running it: each bounded by the socket
            # timeouts, all of it by this.
            with anyio.fail_after(self._timeout * 3):
                answer = await script(keys=keys, args=args, client=client)
        except Exception as exc:  # noqa: BLE001 - the redis boundary: any failure refuses the call
            _log.warning("rate limiter unavailable", extra={"exc_type": type(exc).__name__})
            await self.aclose()
            raise LimiterUnavailable() from None
        return _refusal(answer, buckets)

    async def _connected(self) -> tuple[Any, Any]:
        """The client and its script, made on first use (no I/O: redis connects lazily)."""
        async with self._connecting:
            if self._client is None:
                self._client = await self._connect()
                self._script = self._client.register_script(TAKE)
            return self._script, self._client

    async def _connect(self) -> Any:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        try:
            url = await self._url()
        except CredentialError:
            _log.warning("rate limiter URL unavailable")
            raise LimiterUnavailable("its Redis URL cannot be read") from None
        try:
            return aioredis.Redis.from_url(
                url,
                socket_connect_timeout=self._timeout,
                socket_timeout=self._timeout,
                # A refusal now is better than a call held for retries: the agent can retry.
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError:
            raise LimiterUnavailable("its Redis URL is not a redis:// URL") from None
        finally:
            del url

    async def aclose(self) -> None:
        client, self._client, self._script = self._client, None, None
        if client is None:
            return
        with anyio.move_on_after(self._timeout, shield=True):
            try:
                await client.aclose()
            except Exception as exc:  # noqa: BLE001 - closing a broken client may fail too
                _log.debug("rate limiter close failed", extra={"exc_type": type(exc).__name__})


def _refusal(answer: Any, buckets: Sequence[Bucket]) -> Refusal | None:
    """The script's ``{index, wait}`` as a refusal; index 0 means every token was taken."""
    try:
        index, wait = int(answer[0]), float(answer[1])
    except (TypeError, ValueError, IndexError):
        raise LimiterUnavailable("unexpected answer from Redis") from None
    if index == 0:
        return None
    if not 1 <= index <= len(buckets):
        raise LimiterUnavailable("unexpected answer from Redis")
    return Refusal(buckets[index - 1], wait)
