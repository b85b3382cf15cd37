"""Helpers for the contract tests: custom modules on the child's path, raw JSON-RPC over stdio."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.support import SCOPED_MCP, base_env

FIXTURES = Path(__file__).parent / "fixtures"
"""Holds the ``custom_modules`` package; goes on the server child's PYTHONPATH."""

PROTOCOL_VERSION = "2025-06-18"


def child_env(home: Path, *paths: Path, **extra: str) -> dict[str, str]:
    """``base_env`` plus a PYTHONPATH holding the fixture modules and any ``paths``."""
    pythonpath = ":".join(str(p) for p in (FIXTURES, *paths))
    return base_env(home, PYTHONPATH=pythonpath, **extra)


def initialize(request_id: int = 1) -> dict[str, Any]:
    """The first request an MCP client sends."""
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "contract-tests", "version": "0"},
        },
    }


INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def request(request_id: int, method: str, **params: Any) -> dict[str, Any]:
    """A JSON-RPC request."""
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def call(request_id: int, tool: str, **arguments: Any) -> dict[str, Any]:
    """A ``tools/call`` request."""
    return request(request_id, "tools/call", name=tool, arguments=arguments)


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@dataclass
class RawServer:
    """The server as a bare child process: JSON lines in, every stdout line kept for inspection."""

    process: subprocess.Popen[str]
    stderr_path: Path
    stdout_lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    @classmethod
    def start(cls, args: list[str], *, env: dict[str, str], cwd: Path) -> RawServer:
        """Start ``scoped-mcp *args`` with pipes for stdin/stdout and stderr to a file."""
        stderr_path = cwd / f"stderr-{len(list(cwd.glob('stderr-*')))}.log"
        with stderr_path.open("w") as stderr:
            process = subprocess.Popen(
                [SCOPED_MCP, *args],
                env=env,
                cwd=cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                encoding="utf-8",
            )
        server = cls(process, stderr_path)
        assert process.stdout is not None
        threading.Thread(target=_pump, args=(process.stdout, server._queue), daemon=True).start()
        return server

    def send(self, message: dict[str, Any]) -> None:
        """Write one JSON-RPC message as a line on the server's stdin."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def read(self, timeout: float = 10) -> dict[str, Any] | None:
        """The next stdout line, parsed (it must be JSON); ``None`` at end of output."""
        line = self._queue.get(timeout=timeout)
        if line is None:
            return None
        self.stdout_lines.append(line)
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def ask(self, message: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        """Send a request and return the response with its id (notifications in between kept)."""
        self.send(message)
        while True:
            reply = self.read(timeout)
            assert reply is not None, f"stdout ended before the reply to {message['method']}"
            if reply.get("id") == message["id"]:
                return reply

    def handshake(self) -> dict[str, Any]:
        """initialize + notifications/initialized; returns the initialize result."""
        reply = self.ask(initialize())
        self.send(INITIALIZED)
        result: dict[str, Any] = reply["result"]
        return result

    def close(self, timeout: float = 10) -> int:
        """Close stdin, wait for exit, collect the rest of stdout; return the exit code."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        code = self.process.wait(timeout=timeout)
        self.drain()
        return code

    def drain(self) -> None:
        """Read whatever stdout still holds (the process has exited)."""
        while self.read(timeout=5) is not None:
            pass

    def kill(self) -> None:
        """Best-effort cleanup for a test that failed half-way."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def stderr(self) -> str:
        return self.stderr_path.read_text()


def assert_json_rpc_only(lines: list[str]) -> None:
    """Every line is one JSON-RPC 2.0 message, and nothing else is there."""
    for line in lines:
        message = json.loads(line)
        assert message.get("jsonrpc") == "2.0", line
        assert ("id" in message) or ("method" in message), line


def assert_json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line of ``text`` is a JSON object; return them."""
    records = []
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            assert isinstance(record, dict), line
            records.append(record)
    return records
