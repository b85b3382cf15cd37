"""The in-process bucket store: levels in a dict, time from a monotonic clock.

``take`` does not await, so on one event loop no other call can run between the check and the
take: concurrent calls cannot both spend the last token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from scoped_mcp.limits.buckets import Bucket
from scoped_mcp.limits.store import BucketStore, Refusal


def refill(tokens: float, since: float, now: float, bucket: Bucket) -> float:
    """A bucket's level at ``now``, given ``tokens`` at ``since`` (a clock going back adds none)."""
    gained = max(0.0, now - since) * bucket.rate.per_second
    return min(float(bucket.capacity), tokens + gained)


class LocalBuckets(BucketStore):
    """Buckets of this process only; each starts full."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._levels: dict[str, tuple[float, float]] = {}

    def __repr__(self) -> str:
        return f"LocalBuckets({len(self._levels)} buckets)"

    async def take(self, buckets: Sequence[Bucket]) -> Refusal | None:
        return self.take_now(buckets)

    def take_now(self, buckets: Sequence[Bucket]) -> Refusal | None:
        """``take`` without the coroutine: check every bucket, then take from all or none."""
        now = self._clock()
        levels = []
        refusal: Refusal | None = None
        for bucket in buckets:
            tokens, since = self._levels.get(bucket.name, (float(bucket.capacity), now))
            level = refill(tokens, since, now, bucket)
            levels.append(level)
            if level < 1:
                wait = (1 - level) / bucket.rate.per_second
                if refusal is None or wait > refusal.wait:
                    refusal = Refusal(bucket, wait)
        if refusal is not None:
            return refusal
        for bucket, level in zip(buckets, levels, strict=True):
            self._levels[bucket.name] = (level - 1, now)
        return None
