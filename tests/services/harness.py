"""Builds one module the way the server does (manifest, registry, real broker) for unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scoped_mcp import manifest as manifest_mod
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import ToolModule
from scoped_mcp.redaction import Redactor
from scoped_mcp.server import Runtime, build, start_modules, stop_modules


@dataclass
class Built:
    """A started module plus the runtime around it (redactor, audit log)."""

    module: Any
    runtime: Runtime

    @property
    def redactor(self) -> Redactor:
        return self.runtime.redactor


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
    data = {
        "agent_type": "research",
        "modules": {key: {"config": dict(config)}},
        "audit": {"path": str(tmp_path / f"audit-{key}.jsonl")},
    }
    path = tmp_path / f"manifest-{key}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    runtime = build(manifest_mod.load(path), AgentContext(agent_id, "research"), dict(env))
    await start_modules(runtime)
    try:
        module: ToolModule = dict(runtime.modules)[key]
        yield Built(module, runtime)
    finally:
        await stop_modules(runtime)
