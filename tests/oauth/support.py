"""The OAuth upstream (a real FastMCP server with its in-memory OAuth provider) and the login
driven to completion by the test acting as the browser."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.oauth_upstream import SERVER
from tests.modules.test_mcp_proxy import free_port
from tests.support import SCOPED_MCP, base_env


@dataclass
class OAuthUpstream:
    """A running upstream: its MCP URL and the log of what it was asked and what it minted."""

    url: str
    base: str
    log: Path

    def records(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def minted(self) -> list[str]:
        """Every token and client secret the server issued (random: taken from its side)."""
        return [t for r in self.records() for t in r.get("minted", []) if t]

    def token_requests(self, grant_type: str) -> list[dict[str, Any]]:
        return [
            r for r in self.records() if r.get("path") == "/token" and r["grant_type"] == grant_type
        ]

    def revoke_all(self) -> None:
        httpx.post(f"{self.base}/test/revoke-all", timeout=10).raise_for_status()


@contextmanager
def oauth_upstream(tmp_path: Path, *, expiry: int) -> Iterator[OAuthUpstream]:
    """Start the upstream on a free loopback port with access tokens living ``expiry`` s."""
    port = free_port()
    log = tmp_path / "upstream-oauth.jsonl"
    output = (tmp_path / "upstream-oauth.out").open("ab")
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(port), str(log), "--expiry", str(expiry)],
        stdout=output,
        stderr=subprocess.STDOUT,
        env={"LC_ALL": "C.UTF-8", "FASTMCP_SHOW_SERVER_BANNER": "false"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/.well-known/oauth-authorization-server", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the OAuth upstream did not start") from None
                time.sleep(0.1)
        yield OAuthUpstream(f"{base}/mcp", base, log)
    finally:
        process.terminate()
        process.wait(timeout=10)
        output.close()


def proxy_manifest(upstream: OAuthUpstream, store: Path, **oauth: Any) -> dict[str, Any]:
    """A manifest whose one module proxies the OAuth upstream, its grant in ``store``."""
    return {
        "agent_type": "research",
        "credentials": {"source": "env"},
        "modules": {
            "remote": {
                "type": "scoped_mcp.modules.mcp_proxy:McpProxyModule",
                "config": {
                    "url": upstream.url,
                    "oauth": {"store": f"file:{store}", "scopes": ["read"], **oauth},
                    "tools": {"whoami": "read", "echo_token": "read"},
                },
            }
        },
    }


@dataclass
class LoginRun:
    code: int
    stdout: str
    stderr: str


def login_as_browser(
    manifest: Path, home: Path, *, module: str = "remote", extra_env: dict[str, str] | None = None
) -> LoginRun:
    """Run ``auth login``, open the URL it prints with httpx (the in-memory provider approves at
    once), follow its redirect to the loopback receiver, and wait for the command to finish."""
    env = base_env(home, AGENT_ID="agent-01", AGENT_TYPE="research", **(extra_env or {}))
    process = subprocess.Popen(
        [SCOPED_MCP, "auth", "login", "--manifest", str(manifest), "--module", module],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    url = None
    deadline = time.monotonic() + 60
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.strip().startswith("http"):
            url = line.strip()
    assert url is not None, "".join(lines) + (process.stderr.read() if process.stderr else "")
    answer = httpx.get(url, follow_redirects=False, timeout=30)
    assert answer.status_code in (302, 303, 307), answer.status_code
    location = answer.headers["location"]
    assert location.startswith("http://127.0.0.1:"), location
    done = httpx.get(location, timeout=30)
    assert done.status_code == 200
    stdout, stderr = process.communicate(timeout=60)
    return LoginRun(process.returncode, "".join(lines) + stdout, stderr)
