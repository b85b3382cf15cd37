"""The interface of a bucket store: take one token from every bucket of a call, or from none."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from scoped_mcp.limits.buckets import Bucket


@dataclass(frozen=True, slots=True)
class Refusal:
    """The bucket that refused (the one with the longest wait) and seconds until it has a token."""

    bucket: Bucket
    wait: float


class BucketStore(ABC):
    """Where bucket levels live. ``take`` is all-or-nothing: a refusal takes no token anywhere."""

    @abstractmethod
    async def take(self, buckets: Sequence[Bucket]) -> Refusal | None:
        """Take a token from each of ``buckets`` if every one has one; else say who refused."""

    async def aclose(self) -> None:  # noqa: B027 - a store with nothing to close needs no override
        """Release connections; the default store holds none."""
