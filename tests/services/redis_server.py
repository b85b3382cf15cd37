"""A throwaway redis-server on 127.0.0.1 and a free port (never the machine's own 6379).

Nothing is persisted. ``stop`` and ``start`` again on the same port let a test take Redis away and
give it back; ``password`` turns on ``requirepass`` and puts it in ``url``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.vault.conftest import free_port

redis = pytest.importorskip("redis", reason="install redis: pip install -e '.[dev]'")


class RedisServer:
    """One redis-server child: ``url`` to connect, ``start``/``stop`` to take it up and down."""

    def __init__(self, workdir: Path, *, password: str | None = None) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            pytest.skip("install redis-server: apt-get install redis-server")
        self.binary = binary
        self.workdir = workdir
        self.password = password
        self.port = free_port()
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.workdir), "--protected-mode", "yes"]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        client = self.client()
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def client(self) -> redis.Redis:
        """A synchronous client, for the test's own look at the keys."""
        return redis.Redis.from_url(self.url, decode_responses=True)


@contextmanager
def redis_server(workdir: Path, *, password: str | None = None) -> Iterator[RedisServer]:
    """A started ``RedisServer``, stopped when the block ends."""
    server = RedisServer(workdir, password=password).start()
    try:
        yield server
    finally:
        server.stop()
