"""Benchmark: per-call time of scoped-mcp over streamable HTTP beside stdio, same client library.

    python bench/http_vs_stdio.py [--calls N] [--json out.json]

Serves a temporary copy of ``manifests/research-agent.yml`` twice, once over stdio and once with
``--http 127.0.0.1:PORT``, and drives both with ``fastmcp.Client`` (``StdioTransport`` and
``StreamableHttpTransport`` with the bearer token) calling ``filesystem_read_file`` on a ~100 byte
file. Rounds alternate between the transports so machine noise falls on both alike. Reports the
median and p90 of the client-observed round trip, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from fastmcp import Client
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport

REPO = Path(__file__).resolve().parent.parent
SCOPED_MCP = str(Path(sys.executable).with_name("scoped-mcp"))
ROUNDS = 5


def _environment(home: Path, token: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "AGENT_ID": "bench-01",
        "AGENT_TYPE": "research",
        "SCOPED_MCP_HTTP_TOKEN": token,
    }


def _setup(top: Path) -> Path:
    manifests = top / "checkout" / "manifests"
    manifests.mkdir(parents=True)
    shutil.copyfile(REPO / "manifests" / "research-agent.yml", manifests / "research-agent.yml")
    agent = top / "checkout" / "data" / "agents" / "bench-01"
    agent.mkdir(parents=True)
    (agent / "bench.txt").write_text("The quick brown fox jumps over the lazy dog. " * 2 + "\n")
    return manifests / "research-agent.yml"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _timed_calls(client: Client[Any], calls: int) -> list[float]:
    for _ in range(20):  # warm-up
        await client.call_tool("filesystem_read_file", {"path": "bench.txt"})
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        await client.call_tool("filesystem_read_file", {"path": "bench.txt"})
        times.append((time.perf_counter() - started) * 1000)
    return times


def _start_http(manifest: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [SCOPED_MCP, "serve", "--manifest", str(manifest), "--http", f"127.0.0.1:{port}"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").text == "ready":
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the HTTP server did not become ready")


async def run(calls: int) -> dict[str, Any]:
    """Alternate rounds of ``calls`` calls over each transport; the summary."""
    results: dict[str, list[float]] = {"stdio": [], "http": []}
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp)
        manifest = _setup(top)
        token = secrets.token_urlsafe(32)
        env = _environment(top / "home", token)
        port = _free_port()
        server = _start_http(manifest, env, port)
        try:
            http = StreamableHttpTransport(
                f"http://127.0.0.1:{port}/mcp", headers={"Authorization": f"Bearer {token}"}
            )
            stdio = StdioTransport(SCOPED_MCP, ["--manifest", str(manifest)], env=env)
            async with Client(http) as over_http, Client(stdio) as over_stdio:
                for _ in range(ROUNDS):
                    results["stdio"] += await _timed_calls(over_stdio, calls)
                    results["http"] += await _timed_calls(over_http, calls)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    return {
        name: {
            "median_ms": round(statistics.median(times), 3),
            "p90_ms": round(statistics.quantiles(times, n=10)[-1], 3),
            "calls": len(times),
        }
        for name, times in results.items()
    } | {"machine": platform.platform(), "cpus": os.cpu_count(), "load": os.getloadavg()}


def main() -> int:
    """Run the benchmark and print (or write) the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per round (5 rounds)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args()
    summary = asyncio.run(run(args.calls))
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
