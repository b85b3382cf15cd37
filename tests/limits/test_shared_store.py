"""The Redis bucket store against a real redis-server: all-or-nothing, namespaced, fails closed."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from scoped_mcp.limits.buckets import Bucket
from scoped_mcp.limits.errors import LimiterUnavailable
from scoped_mcp.limits.rate import Rate
from scoped_mcp.limits.shared import RedisBuckets
from tests.services.redis_server import RedisServer, redis_server
from tests.support import pause_process

pytestmark = pytest.mark.anyio


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as running:
        yield running


def store_for(url: str, agent_type: str = "research") -> RedisBuckets:
    async def read() -> str:
        return url

    return RedisBuckets(read, agent_type=agent_type, timeout=2.0)


def hourly(name: str, count: int) -> Bucket:
    return Bucket(name, name, Rate(count, 3600), count)


async def test_a_refusal_takes_no_token_from_any_bucket(server: RedisServer) -> None:
    """The tool bucket refuses; the module bucket's level is what it was before the refusal."""
    store = store_for(server.url)
    tool, module = hourly("tool:t", 1), hourly("module:m", 3)
    try:
        assert await store.take([tool, module]) is None
        for _ in range(4):
            refused = await store.take([tool, module])
            assert refused is not None
            assert refused.bucket == tool
            assert 3000 < refused.wait <= 3600
        assert await store.take([module]) is None
        assert await store.take([module]) is None
        refused = await store.take([module])
        assert refused is not None
        assert refused.bucket == module
    finally:
        await store.aclose()
    direct = server.client()
    try:
        keys = sorted(direct.keys("*"))
        assert keys == ["scoped-mcp:rl:{research}:module:m", "scoped-mcp:rl:{research}:tool:t"]
        assert 0 < direct.pttl(keys[0]) <= 3600 * 1000 + 1000
    finally:
        direct.close()


async def test_agent_types_have_their_own_buckets(server: RedisServer) -> None:
    """Another agent type's empty bucket of the same name does not limit this one."""
    first, second = store_for(server.url, "research"), store_for(server.url, "build")
    bucket = hourly("overall", 1)
    try:
        assert await first.take([bucket]) is None
        assert await first.take([bucket]) is not None
        assert await second.take([bucket]) is None
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_down_refuses_and_recovers(server: RedisServer) -> None:
    """With Redis stopped every call is refused; once it is back, calls are admitted again."""
    store = store_for(server.url)
    bucket = hourly("overall", 100)
    try:
        assert await store.take([bucket]) is None
        server.stop()
        for _ in range(3):
            with pytest.raises(LimiterUnavailable, match="rate limiter unavailable"):
                await store.take([bucket])
        server.start()
        assert await store.take([bucket]) is None
    finally:
        await store.aclose()


async def test_a_wrong_password_refuses_without_saying_it(tmp_path: Path) -> None:
    """A URL whose password Redis rejects gives the short refusal; the repr hides the URL."""
    with redis_server(tmp_path, password="right-pass-7351") as running:
        wrong = running.url.replace("right-pass-7351", "wrong-pass-9184")
        store = store_for(wrong)
        try:
            with pytest.raises(LimiterUnavailable) as caught:
                await store.take([hourly("overall", 5)])
        finally:
            await store.aclose()
    assert "pass" not in caught.value.message
    assert caught.value.__cause__ is None
    assert "9184" not in repr(store)


async def test_concurrent_takes_from_two_clients_never_exceed_the_bucket(
    server: RedisServer,
) -> None:
    """Forty concurrent takes through two clients from a bucket of 10 (per hour): exactly 10."""
    stores = [store_for(server.url), store_for(server.url)]
    bucket = hourly("overall", 10)
    results: list[bool] = []

    async def take(store: RedisBuckets) -> None:
        results.append(await store.take([bucket]) is None)

    try:
        async with anyio.create_task_group() as group:
            for index in range(40):
                group.start_soon(take, stores[index % 2])
    finally:
        for store in stores:
            await store.aclose()
    assert results.count(True) == 10
    assert results.count(False) == 30


async def test_a_redis_that_does_not_answer_is_refused_within_the_timeout(
    server: RedisServer,
) -> None:
    """A stopped (SIGSTOP) Redis accepts connections but never answers: the take is refused
    within a few timeouts, not held; after SIGCONT takes succeed again."""

    async def read() -> str:
        return server.url

    store = RedisBuckets(read, agent_type="research", timeout=0.5)
    bucket = hourly("overall", 100)
    assert server.process is not None
    try:
        assert await store.take([bucket]) is None
        pause_process(server.process.pid)
        try:
            started = time.monotonic()
            with pytest.raises(LimiterUnavailable):
                await store.take([bucket])
            assert time.monotonic() - started < 10
        finally:
            server.process.send_signal(signal.SIGCONT)
        assert await store.take([bucket]) is None
    finally:
        await store.aclose()
