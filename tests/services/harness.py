"""Builds one module the way the server does, through the public kit's module harness.

``built_module`` is ``scoped_mcp.testing.harness.module_harness`` with the arguments these suites
have always passed (a config, credentials from ``env``, an agent id).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from scoped_mcp.testing.harness import ModuleHarness, module_harness

Built = ModuleHarness


@asynccontextmanager
async def built_module(
    tmp_path: Path,
    key: str,
    config: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    agent_id: str = "agent-01",
) -> AsyncIterator[ModuleHarness]:
    """Start module ``key`` with ``config`` and credentials from ``env`` (env source)."""
    async with module_harness(tmp_path, key, config, env=env, agent_id=agent_id) as harness:
        yield harness
