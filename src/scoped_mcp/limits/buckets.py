"""Which token buckets a tool call must pass: its tool globs', its module's, and the overall one."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from scoped_mcp.limits.config import BucketSpec, RateLimitsSpec
from scoped_mcp.limits.rate import Rate


@dataclass(frozen=True, slots=True)
class Bucket:
    """One configured bucket: its name (the storage key), size, refill and what it limits."""

    name: str
    limits: str
    rate: Rate
    capacity: int

    @classmethod
    def of(cls, name: str, limits: str, spec: BucketSpec) -> Bucket:
        return cls(name, limits, spec.parsed, spec.capacity)

    def describe(self) -> str:
        """``30 calls per minute for module sqlite`` (``, burst 5`` when it differs)."""
        burst = f" (burst {self.capacity})" if self.capacity != self.rate.count else ""
        return f"{self.rate}{burst} for {self.limits}"


def _tools_text(glob: str) -> str:
    return f"tools {glob}" if any(c in glob for c in "*?[") else f"tool {glob}"


class BucketSet:
    """The buckets of one manifest, and for each tool name the ones that apply (computed once)."""

    def __init__(self, spec: RateLimitsSpec) -> None:
        self._tools = [
            Bucket.of(f"tool:{glob}", _tools_text(glob), bucket)
            for glob, bucket in spec.tools.items()
        ]
        self._modules = {
            key: Bucket.of(f"module:{key}", f"module {key}", bucket)
            for key, bucket in spec.modules.items()
        }
        self._overall = (
            Bucket.of("overall", "all tools of this agent", spec.overall) if spec.overall else None
        )
        self._by_tool: dict[tuple[str, str], tuple[Bucket, ...]] = {}

    @property
    def empty(self) -> bool:
        """Whether no bucket is configured at all."""
        return not (self._tools or self._modules or self._overall)

    def for_tool(self, module_key: str, tool_name: str) -> tuple[Bucket, ...]:
        """The buckets a call of ``tool_name`` (of module ``module_key``) takes a token from."""
        found = self._by_tool.get((module_key, tool_name))
        if found is None:
            globs = [b for b in self._tools if fnmatchcase(tool_name, b.name[len("tool:") :])]
            module = self._modules.get(module_key)
            found = (*globs, *(b for b in (module, self._overall) if b is not None))
            self._by_tool[(module_key, tool_name)] = found
        return found
