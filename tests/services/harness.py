"""The module suites' entry to the public kit's module harness.

``built_module`` is ``scoped_mcp.testing.harness.module_harness`` with the arguments these suites
have always passed. They call tool methods directly, to see our own exception types rather than the
agent's text, so ``Built.module`` is the harness's ``direct`` view: each tool method first passes
its ``Scoped`` arguments through the pipeline's own rules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from scoped_mcp.testing.harness import ModuleHarness, module_harness


class Built:
    """The kit's ``ModuleHarness``, with ``module`` seen through the pipeline's scope rules."""

    def __init__(self, harness: ModuleHarness) -> None:
        self.harness = harness
        self.module = harness.direct

    def __getattr__(self, name: str) -> Any:
        return getattr(self.harness, name)


@asynccontextmanager
async def built_module(
    tmp_path: Path,
    key: str,
    config: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    agent_id: str = "agent-01",
) -> AsyncIterator[Built]:
    """Start module ``key`` with ``config`` and credentials from ``env`` (env source)."""
    async with module_harness(tmp_path, key, config, env=env, agent_id=agent_id) as harness:
        yield Built(harness)
