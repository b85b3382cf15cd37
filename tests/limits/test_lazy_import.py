"""The Redis client is imported only for a manifest with rate_limits.shared, and only when a call
first needs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CODE = """
import sys
from pathlib import Path
from scoped_mcp import manifest, server
from scoped_mcp.identity import AgentContext
m = manifest.load({path!r})
m = m.model_copy(update={{'audit': m.audit.model_copy(update={{'path': Path({audit!r})}})}})
server.build(m, AgentContext('a1', 'research'), {{}})
print(sorted(n for n in ('redis', 'scoped_mcp.limits.shared') if n in sys.modules))
"""


@pytest.mark.parametrize(
    ("limits", "loaded"),
    [
        ({}, "[]"),
        ({"overall": "5/minute", "tools": {"filesystem_*": "1/s"}}, "[]"),
        (
            {"overall": "5/minute", "shared": "redis://127.0.0.1:1/0"},
            "['scoped_mcp.limits.shared']",
        ),
    ],
)
def test_redis_is_imported_only_when_a_shared_limit_is_used(
    write_manifest: Any, tmp_path: Path, limits: dict[str, Any], loaded: str
) -> None:
    """In-process limits never load redis; shared ones load our store, and redis not yet."""
    path = write_manifest(
        {
            "agent_type": "research",
            "modules": {"filesystem": {"mode": "read", "config": {"base_path": str(tmp_path)}}},
            "rate_limits": limits,
        }
    )
    code = CODE.format(path=str(path), audit=str(tmp_path / "a.jsonl"))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == loaded


def test_shared_limits_without_the_redis_client_stop_start_up(
    write_manifest: Any, tmp_path: Path
) -> None:
    """rate_limits.shared with no redis package installed: start-up stops naming the extra."""
    path = write_manifest(
        {
            "agent_type": "research",
            "modules": {"filesystem": {"mode": "read", "config": {"base_path": str(tmp_path)}}},
            "rate_limits": {"overall": "5/minute", "shared": "redis://127.0.0.1:1/0"},
        }
    )
    code = "import sys\nsys.modules['redis'] = None\n" + CODE.format(
        path=str(path), audit=str(tmp_path / "a.jsonl")
    ).replace("server.build(", "try:\n    server.build(").replace(
        "\nprint(", "\nexcept Exception as exc:\n    print(exc.diagnostics())\nprint("
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "rate_limits.shared: the Redis client (the redis package) is not installed" in (
        done.stdout
    )
    assert "pip install 'scoped-mcp[redis]'" in done.stdout
