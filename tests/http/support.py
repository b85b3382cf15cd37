"""Test support: a real ``scoped-mcp serve --http`` process and real HTTP/MCP clients for it."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from tests.support import SCOPED_MCP, base_env

TOKEN = "test-token-0123456789abcdef"
START_SECONDS = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class HttpServer:
    """A running server process: where it listens, its audit log and stderr."""

    process: subprocess.Popen[bytes]
    address: str
    audit_path: Path
    stderr_path: Path
    uds: Path | None = None
    ca: Path | None = None  # set when serving TLS: the certificate to trust

    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://{self.address}/mcp"

    def http(self) -> httpx.Client:
        """A plain HTTP client for this server (over its unix socket when it has one)."""
        if self.uds is not None:
            transport = httpx.HTTPTransport(uds=str(self.uds))
            return httpx.Client(transport=transport, base_url="http://localhost", timeout=10)
        if self.ca is None:
            return httpx.Client(base_url=f"http://{self.address}", timeout=10)
        trust = ssl.create_default_context(cafile=str(self.ca))
        return httpx.Client(base_url=f"https://{self.address}", timeout=10, verify=trust)

    def client(self, token: str = TOKEN) -> Client[Any]:
        """A real MCP client over streamable HTTP, presenting ``token``."""
        headers = {"Authorization": f"Bearer {token}"}
        return Client(StreamableHttpTransport(self.url, headers=headers))

    def audit_records(self, event: str | None = None) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        rows = [json.loads(line) for line in self.audit_path.read_text().splitlines() if line]
        return [r for r in rows if event is None or r["event"] == event]

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""

    def stop(self) -> int:
        """SIGTERM, as a supervisor stops it; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def start_http(
    manifest: Path,
    home: Path,
    *,
    agent_type: str,
    agent_id: str = "agent-01",
    address: str | None = None,
    env: dict[str, str] | None = None,
    tls: tuple[Path, Path] | None = None,
) -> HttpServer:
    """Start the server with ``--http`` and wait until /healthz says ready."""
    address = address or f"127.0.0.1:{free_port()}"
    environ = base_env(
        home, AGENT_ID=agent_id, AGENT_TYPE=agent_type, SCOPED_MCP_HTTP_TOKEN=TOKEN, **(env or {})
    )
    stderr_path = home / f"stderr-{agent_id}.log"
    tls_args = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else []
    with stderr_path.open("ab") as stderr:
        process = subprocess.Popen(
            [SCOPED_MCP, "serve", "--manifest", str(manifest), "--http", address, *tls_args],
            env=environ,
            cwd=str(home),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    uds = Path(address.removeprefix("unix:")) if address.startswith("unix:") else None
    server = HttpServer(
        process,
        address,
        home / "state" / "scoped-mcp" / "audit" / f"{agent_id}.jsonl",
        stderr_path,
        uds,
        tls[0] if tls else None,
    )
    _wait_ready(server)
    return server


def _wait_ready(server: HttpServer) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited {server.process.returncode}: {server.stderr()}")
        try:
            with server.http() as http:
                if http.get("/healthz").text == "ready":
                    return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"server not ready in {START_SECONDS}s: {server.stderr()}")


@contextmanager
def serving(manifest: Path, home: Path, **options: Any) -> Iterator[HttpServer]:
    """A server for the length of the block, stopped with SIGTERM after it."""
    server = start_http(manifest, home, **options)
    try:
        yield server
    finally:
        server.stop()
