"""Token bucket arithmetic with an injected clock: refill, burst, all-or-nothing, waits."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from scoped_mcp.limits.buckets import Bucket, BucketSet
from scoped_mcp.limits.config import RateLimitsSpec
from scoped_mcp.limits.errors import RateLimited
from scoped_mcp.limits.limiter import RateLimiter
from scoped_mcp.limits.local import LocalBuckets
from scoped_mcp.limits.rate import Rate, parse_rate


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bucket(name: str, count: int, period: float, capacity: int | None = None) -> Bucket:
    return Bucket(name, name, Rate(count, period), capacity or count)


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [("30/minute", 30, 60), ("1/s", 1, 1), (" 5 / h ", 5, 3600), ("7/second", 7, 1)],
)
def test_rates_parse(text: str, count: int, period: float) -> None:
    """Every accepted form of a rate gives its count and period in seconds."""
    assert parse_rate(text) == Rate(count, period)


@pytest.mark.parametrize("text", ["30", "30/fortnight", "-1/m", "1.5/m", "0/m", "30/minutes"])
def test_bad_rates_name_the_accepted_forms(text: str) -> None:
    """A rate outside the accepted forms is refused with the forms or the bound."""
    with pytest.raises(ValueError, match=r"N/minute|1 to"):
        parse_rate(text)


def test_a_full_bucket_allows_its_burst_then_refills_at_the_rate() -> None:
    """A 60/minute bucket of burst 3 allows 3 at once, then one per second of clock."""
    clock = Clock()
    store = LocalBuckets(clock=clock)
    b = bucket("b", 60, 60, capacity=3)
    assert [store.take_now([b]) for _ in range(3)] == [None, None, None]
    refused = store.take_now([b])
    assert refused is not None
    assert refused.bucket == b
    assert refused.wait == pytest.approx(1.0)
    clock.now += 0.5
    refused = store.take_now([b])
    assert refused is not None
    assert refused.wait == pytest.approx(0.5)
    clock.now += 0.5
    assert store.take_now([b]) is None
    clock.now += 3600
    assert [store.take_now([b]) for _ in range(4)][:3] == [None, None, None]


def test_a_refusal_by_one_bucket_takes_no_token_from_the_others() -> None:
    """The tool bucket is empty: the module bucket keeps every token it had."""
    clock = Clock()
    store = LocalBuckets(clock=clock)
    tool, module = bucket("tool", 1, 3600), bucket("module", 2, 3600)
    assert store.take_now([tool, module]) is None
    for _ in range(5):
        refused = store.take_now([tool, module])
        assert refused is not None
        assert refused.bucket == tool
    assert store.take_now([module]) is None
    refused = store.take_now([module])
    assert refused is not None
    assert refused.bucket == module


def test_the_longest_wait_is_reported() -> None:
    """Two empty buckets: the refusal names the one that refills last."""
    clock = Clock()
    store = LocalBuckets(clock=clock)
    fast, slow = bucket("fast", 1, 1), bucket("slow", 1, 3600)
    assert store.take_now([fast, slow]) is None
    refused = store.take_now([fast, slow])
    assert refused is not None
    assert refused.bucket == slow
    assert refused.wait == pytest.approx(3600)


def test_a_clock_going_back_adds_no_tokens() -> None:
    """A backwards step of the clock neither refills nor breaks the bucket."""
    clock = Clock()
    store = LocalBuckets(clock=clock)
    b = bucket("b", 1, 60)
    assert store.take_now([b]) is None
    clock.now -= 500
    assert store.take_now([b]) is not None


def test_buckets_that_apply_to_a_tool() -> None:
    """A tool passes its globs' buckets, its module's and the overall one; one glob, one bucket."""
    spec = RateLimitsSpec.model_validate(
        {
            "overall": "100/minute",
            "modules": {"sqlite": "10/minute"},
            "tools": {"sqlite_*": {"rate": "5/minute", "burst": 2}, "sqlite_query": "3/s"},
        }
    )
    buckets = BucketSet(spec)
    names = [b.name for b in buckets.for_tool("sqlite", "sqlite_query")]
    assert names == ["tool:sqlite_*", "tool:sqlite_query", "module:sqlite", "overall"]
    assert [b.name for b in buckets.for_tool("sqlite", "sqlite_execute")] == [
        "tool:sqlite_*",
        "module:sqlite",
        "overall",
    ]
    assert [b.name for b in buckets.for_tool("filesystem", "filesystem_read_file")] == ["overall"]
    glob = buckets.for_tool("sqlite", "sqlite_execute")[0]
    assert glob.capacity == 2
    assert glob.describe() == "5 calls per minute (burst 2) for tools sqlite_*"
    assert BucketSet(RateLimitsSpec()).for_tool("sqlite", "sqlite_query") == ()


@pytest.mark.anyio
async def test_the_limiter_refuses_with_the_limit_and_the_wait() -> None:
    """The refusal names the limit and a whole number of seconds to wait, at least 1."""
    clock = Clock()
    spec = RateLimitsSpec.model_validate({"modules": {"sqlite": "2/minute"}})
    limiter = RateLimiter(BucketSet(spec), LocalBuckets(clock=clock))
    await limiter.admit("sqlite", "sqlite_query")
    await limiter.admit("sqlite", "sqlite_execute")
    clock.now += 18
    with pytest.raises(RateLimited) as caught:
        await limiter.admit("sqlite", "sqlite_query")
    assert caught.value.message == (
        "rate limited: 2 calls per minute for module sqlite; retry in 12 s"
    )
    assert caught.value.outcome == "denied"
    await limiter.admit("filesystem", "filesystem_read_file")


@pytest.mark.anyio
async def test_concurrent_calls_cannot_share_the_last_token() -> None:
    """Thirty calls at once on one event loop against a bucket of 5 (per hour): exactly 5 run."""
    spec = RateLimitsSpec.model_validate({"overall": "5/hour"})
    limiter = RateLimiter(BucketSet(spec), LocalBuckets())
    admitted: list[bool] = []

    async def call() -> None:
        await anyio.lowlevel.checkpoint()
        try:
            await limiter.admit("sqlite", "sqlite_query")
        except RateLimited:
            admitted.append(False)
        else:
            admitted.append(True)

    async with anyio.create_task_group() as group:
        for _ in range(30):
            group.start_soon(call)
    assert admitted.count(True) == 5
    assert admitted.count(False) == 25
