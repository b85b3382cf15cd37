"""The official TypeScript MCP SDK as a test client: installed once, run with the machine's Node.

``tests/fixtures/ts_client`` pins ``@modelcontextprotocol/sdk`` (package.json and its lock); the
first use runs ``npm ci`` there (node_modules/ is git-ignored) and later runs reuse it. Without
``node``/``npm`` the test skips naming what to install (and CI, where skips fail, has both: it
installs the Bitwarden CLI with npm); when npm cannot reach its registry the test fails saying so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ts_client"
SCRIPT = FIXTURE / "client.mjs"
INSTALL_SECONDS = 600
RUN_SECONDS = 120


def _pinned_version() -> str:
    dependencies = json.loads((FIXTURE / "package.json").read_text())["dependencies"]
    version: str = dependencies["@modelcontextprotocol/sdk"]
    return version


def _installed_version() -> str | None:
    installed = FIXTURE / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json"
    if not installed.exists():
        return None
    version: str = json.loads(installed.read_text())["version"]
    return version


def ensure_sdk() -> str:
    """The ``node`` binary, with the pinned SDK installed beside the client script."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("install Node.js 20 and npm (apt-get install nodejs npm) for the TS SDK client")
    pinned = _pinned_version()
    if _installed_version() != pinned:
        done = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=FIXTURE,
            capture_output=True,
            text=True,
            timeout=INSTALL_SECONDS,
            check=False,
        )
        if done.returncode != 0 or _installed_version() != pinned:
            pytest.fail(
                f"npm ci of @modelcontextprotocol/sdk@{pinned} in {FIXTURE} failed (the npm "
                f"registry is needed once, then node_modules/ is reused):\n{done.stderr[-2000:]}"
            )
    return node


def run_client(
    node: str,
    url: str,
    *,
    token: str | None,
    calls: list[dict[str, Any]] | None = None,
    env: dict[str, str],
) -> dict[str, Any]:
    """Run the TypeScript client against ``url``; its one JSON answer."""
    environ = {**env, "MCP_URL": url, "MCP_CALLS": json.dumps(calls or [])}
    if token is not None:
        environ["MCP_TOKEN"] = token
    done = subprocess.run(
        [node, str(SCRIPT)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer
