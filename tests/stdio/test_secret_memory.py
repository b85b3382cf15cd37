"""The real server's memory, scanned from outside while it serves calls that use a credential.

The server marks itself non-dumpable, so only a process with ptrace rights over it (root, or
CAP_SYS_PTRACE) can read its memory; elsewhere the test is skipped. Live objects cannot be told
from freed memory from outside, so this reports totals; tests/credentials/test_secret_memory.py
attributes each copy in-process.
"""

from __future__ import annotations

import ctypes
import socket
import sys
import threading
from pathlib import Path

import pytest
import yaml

from tests.contract_support import RawServer, call, child_env
from tests.credentials.test_secret_memory import MaskedSecret, Scanner, Sink

MAX_HTTP_PROXY_COPIES = 20  # measured 11-14 after 50-150 calls: docs/threat-model.md
pytestmark = [
    pytest.mark.stdio,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/mem"),
]


@pytest.mark.parametrize("source", ["file", "env"])
def test_server_memory_holds_few_copies(tmp_path: Path, source: str) -> None:
    """In the live server, a file secret is absent before the first call needs it (the preflight
    keeps at most YAML's stray copies), and more calls that send it in an HTTP header leave a
    bounded number of copies that does not grow with the calls."""
    secret = MaskedSecret()
    secrets_file = tmp_path / "secrets.yml"
    secret.write_yaml(secrets_file, "API_TOKEN")
    credentials = {"source": "file", "path": str(secrets_file)}
    extra: dict[str, str] = {}
    if source == "env":
        # The child's environment is the one place the test must hold the plaintext.
        plain = secret.plaintext()
        extra["API_TOKEN"] = plain.decode()
        credentials = {"source": "env"}
    sink = Sink()
    manifest = tmp_path / "leaky.yml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "agent_type": "leaky",
                "credentials": credentials,
                "modules": {
                    "leaky": {
                        "type": "leaky_modules.leaky:LeakyModule",
                        "mode": "read",
                        "config": {"url": f"http://127.0.0.1:{sink.port}"},
                    }
                },
            }
        )
    )
    env = child_env(tmp_path / "home", AGENT_ID="mem-01", AGENT_TYPE="leaky", **extra)
    server = RawServer.start(["--manifest", str(manifest)], env=env, cwd=tmp_path)
    scanner = Scanner(secret, pid=server.process.pid)
    counts: dict[str, int] = {}
    try:
        server.handshake()
        try:
            counts["after start-up (preflight)"] = len(scanner.find())
        except PermissionError as exc:
            pytest.skip(f"needs ptrace rights over the non-dumpable server: {exc}")
        assert server.ask(call(10, "leaky_ping"))["result"]["structuredContent"]["result"] == 204
        counts["after the first call"] = len(scanner.find())
        for number in range(11, 31):
            server.ask(call(number, "leaky_ping"))
        counts["after 20 more calls"] = len(scanner.find())
        for number in range(31, 81):
            server.ask(call(number, "leaky_ping"))
        counts["after 50 more calls"] = len(scanner.find())
        assert server.close() == 0
    finally:
        server.kill()
        scanner.close()
        sink.close()
    print("\n" + "\n".join(f"server ({source}) {stage}: {n}" for stage, n in counts.items()))
    if source == "file":
        assert counts["after start-up (preflight)"] <= 3, "the preflight left more than YAML's"
    # Each call's str copy (text(), the header) is freed; the allocator reuses that memory, so the
    # number stays bounded instead of growing with the calls.
    assert counts["after 20 more calls"] <= counts["after the first call"] + 2
    assert counts["after 50 more calls"] <= counts["after the first call"] + 2


class KeepAliveSink:
    """As ``Sink``, but answering many requests per connection (HTTP/1.1 keep-alive)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    @staticmethod
    def _connection(conn: socket.socket) -> None:
        buffer = bytearray(65536)
        with conn:
            while True:
                got = 0
                while b"\r\n\r\n" not in buffer[:got]:
                    n = conn.recv_into(memoryview(buffer)[got:])
                    if not n:
                        return
                    got += n
                ctypes.memset((ctypes.c_char * len(buffer)).from_buffer(buffer), 0, got)
                conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


def test_http_proxy_memory_holds_a_bounded_number_of_copies(tmp_path: Path) -> None:
    """The built-in http_proxy, sending a file secret as a bearer token over keep-alive
    connections: the copies left in the server's memory stay within the bound docs/threat-model.md
    states, however many calls are made."""
    secret = MaskedSecret()
    secrets_file = tmp_path / "secrets.yml"
    secret.write_yaml(secrets_file, "API_TOKEN")
    sink = KeepAliveSink()
    service = {
        "base_url": f"http://127.0.0.1:{sink.port}/",
        "auth": {"key": "API_TOKEN"},
        "allow_private_networks": True,
    }
    manifest = tmp_path / "proxy.yml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "agent_type": "mem",
                "credentials": {"source": "file", "path": str(secrets_file)},
                "modules": {"http_proxy": {"mode": "read", "config": {"services": {"s": service}}}},
            }
        )
    )
    env = child_env(tmp_path / "home", AGENT_ID="mem-02", AGENT_TYPE="mem")
    server = RawServer.start(["--manifest", str(manifest)], env=env, cwd=tmp_path)
    scanner = Scanner(secret, pid=server.process.pid)
    counts: dict[int, int] = {}
    try:
        server.handshake()
        try:
            scanner.find()
        except PermissionError as exc:
            pytest.skip(f"needs ptrace rights over the non-dumpable server: {exc}")
        done = 0
        for total in (1, 10, 50, 150):
            for number in range(done, total):
                answer = server.ask(call(100 + number, "http_proxy_get", service="s", path="x"))
                assert not answer["result"].get("isError"), answer
            done = total
            counts[total] = len(scanner.find())
        assert server.close() == 0
    finally:
        server.kill()
        scanner.close()
        sink.close()
    print("\n" + "\n".join(f"http_proxy after {n} calls: {c} copies" for n, c in counts.items()))
    assert max(counts.values()) <= MAX_HTTP_PROXY_COPIES, counts
