"""Shared fixtures: a real scoped-mcp server over stdio, driven by a real MCP client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import yaml

from scoped_mcp.testing.harness import write_manifest as write_manifest_file
from tests.support import ServerHandle, running_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def write_manifest(tmp_path: Path) -> Callable[..., Path]:
    """Write a manifest (a dict) to tmp_path and return its path."""

    def write(data: dict[str, Any], name: str = "manifest.yml") -> Path:
        path = tmp_path / name
        write_manifest_file(path, data)
        return path

    return write


@pytest.fixture
def serve(
    tmp_path: Path,
) -> Callable[..., AbstractAsyncContextManager[ServerHandle]]:
    """Start ``scoped-mcp --manifest M`` as a child process and connect an MCP client to it.

    Usage: ``async with serve(manifest_path, agent_id="r1") as server: await server.client...``
    """

    def start(
        manifest: Path,
        *,
        agent_id: str = "agent-01",
        agent_type: str | None = None,
        env: dict[str, str] | None = None,
    ) -> AbstractAsyncContextManager[ServerHandle]:
        if agent_type is None:
            agent_type = yaml.safe_load(manifest.read_text())["agent_type"]
        return running_server(
            manifest,
            agent_id=agent_id,
            agent_type=agent_type,
            extra_env=env or {},
            home=tmp_path / "home",
        )

    return start


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: a green run that skipped a suite proves nothing."""
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) were skipped; install what they name", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


__all__ = ["AsyncIterator"]
