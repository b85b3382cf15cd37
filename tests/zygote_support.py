"""A real ``scoped-mcp zygote`` on a temporary runtime directory, for the zygote's tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.contract_support import INITIALIZED, RawServer, child_env, initialize
from tests.support import SCOPED_MCP

READY_SECONDS = 120.0
START_SECONDS = 120.0
"""A generous bound for an in-process start on a loaded shared machine (not a timing check)."""


def handshake(server: RawServer) -> None:
    """initialize + initialized, waiting as long as a slow in-process start may take."""
    server.ask(initialize(), timeout=START_SECONDS)
    server.send(INITIALIZED)


@dataclass
class Zygote:
    """The running zygote: its process, runtime directory and the log it writes."""

    process: subprocess.Popen[bytes]
    runtime: Path
    log: Path

    @property
    def socket(self) -> Path:
        return self.runtime / "scoped-mcp" / "zygote.sock"

    def children(self) -> list[int]:
        """The pids the zygote has forked and not yet reaped."""
        pid = self.process.pid
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]

    def wait_for_children(self, count: int, timeout: float = 60) -> list[int]:
        """Wait until the zygote has exactly ``count`` children; return them."""
        deadline = time.monotonic() + timeout
        while len(found := self.children()) != count:
            if time.monotonic() > deadline:
                raise AssertionError(f"zygote children {found}, expected {count}")
            time.sleep(0.05)
        return found

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """A launcher environment that finds this zygote."""
        return launcher_env(self.runtime, home, **extra)


def launcher_env(runtime: Path, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a launcher (or zygote) using ``runtime`` as XDG_RUNTIME_DIR."""
    return child_env(home, XDG_RUNTIME_DIR=str(runtime), **extra)


@contextmanager
def running_zygote(top: Path) -> Iterator[Zygote]:
    """Start ``scoped-mcp zygote`` under ``top`` and wait until its socket answers."""
    runtime = top / "run"
    runtime.mkdir(mode=0o700)
    log = top / "zygote.log"
    env = launcher_env(runtime, top / "zygote-home")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [SCOPED_MCP, "zygote"], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    zygote = Zygote(process, runtime, log)
    try:
        deadline = time.monotonic() + READY_SECONDS
        while b"listening" not in log.read_bytes():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the zygote did not start"
            time.sleep(0.05)
        yield zygote
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def socket_inodes(pid: int) -> set[str]:
    """The ``socket:[inode]`` links among a process's open fds."""
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found
