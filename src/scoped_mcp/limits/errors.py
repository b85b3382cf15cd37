"""The refusals of the rate limit step; both mean the tool did not run and nothing was read."""

from __future__ import annotations

import math

from scoped_mcp.errors import ToolCallError


class RateLimited(ToolCallError):
    """A bucket that applies to the call is empty (outcome ``denied``)."""

    outcome = "denied"

    def __init__(self, limit: str, wait: float) -> None:
        self.retry_after = max(1, math.ceil(wait))
        super().__init__(f"rate limited: {limit}; retry in {self.retry_after} s")


class LimiterUnavailable(ToolCallError):
    """The shared limiter (Redis) cannot be asked: the call is refused, not let through."""

    outcome = "error"

    def __init__(self, why: str = "Redis unreachable") -> None:
        super().__init__(f"rate limiter unavailable ({why}): call refused, nothing was done")
