"""The waiter a launcher becomes after the hand-over, run as the launcher runs it
(``python -I -S zygote_waiter.py FD``) against the other end of a real socket pair."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scoped_mcp import zygote_waiter

WAITER = Path(zygote_waiter.__file__)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="unix signals")


class Waiter:
    def __init__(self) -> None:
        self.zygote_end, theirs = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WAITER), str(theirs.fileno()), "--manifest", "m.yml"],
            pass_fds=[theirs.fileno()],
            stderr=subprocess.PIPE,
            text=True,
        )
        theirs.close()
        self.zygote_end.settimeout(10)

    def ready(self) -> None:
        """Wait until the waiter's handlers are in place (SigCgt lists the relayed signals).

        Only once the exec is done: before it, the forked child shows the test process's own
        handlers, and a signal sent then is lost with them (seen under load in CI).
        """
        wanted = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if WAITER.name.encode() not in Path(f"/proc/{self.process.pid}/cmdline").read_bytes():
                time.sleep(0.01)
                continue
            status = Path(f"/proc/{self.process.pid}/status").read_text()
            caught = int(status.split("SigCgt:")[1].split()[0], 16)
            if all(caught & (1 << (s - 1)) for s in wanted):
                return
            time.sleep(0.01)
        raise AssertionError("the waiter never installed its signal handlers")

    def finish(self) -> tuple[int, str]:
        _, err = self.process.communicate(timeout=10)
        return self.process.returncode, err


@pytest.fixture
def waiter() -> Iterator[Waiter]:
    running = Waiter()
    yield running
    running.process.kill()
    running.process.wait()
    running.zygote_end.close()


@pytest.mark.parametrize("code", [0, 2, 75])
def test_the_childs_exit_code_is_the_launchers(waiter: Waiter, code: int) -> None:
    waiter.zygote_end.sendall(b'{"exit": %d}\n' % code)
    assert waiter.finish() == (code, "")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_is_relayed_and_the_childs_signal_ends_the_launcher(
    waiter: Waiter, signum: signal.Signals
) -> None:
    waiter.ready()
    waiter.process.send_signal(signum)
    assert waiter.zygote_end.recv(100) == b'{"signal": %d}\n' % signum
    waiter.zygote_end.sendall(b'{"signal": %d}\n' % signum)
    assert waiter.finish() == (-signum, "")


def test_a_lost_connection_exits_1_with_one_ops_line(waiter: Waiter) -> None:
    waiter.zygote_end.close()
    code, err = waiter.finish()
    assert code == 1
    [line] = err.splitlines()
    record = json.loads(line)
    assert record["logger"] == "scoped_mcp.zygote"
    assert record["message"] == "zygote connection ended without the child's exit code"


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ('{"exit": 0}', ("exit", 0)),
        ('{"exit": 3}', ("exit", 3)),
        ('{"signal": 15}', ("signal", 15)),
        ('{"exit": -1}', None),
        ('{"exit": "3"}', None),
        ('{"stop": 1}', None),
        ("", None),
    ],
)
def test_only_the_zygotes_two_status_lines_are_read(
    line: str, status: tuple[str, int] | None
) -> None:
    assert zygote_waiter.parse_status(line) == status


def test_a_garbled_status_exits_1(waiter: Waiter) -> None:
    waiter.zygote_end.sendall(b'{"exit": "zero"}\n')
    code, err = waiter.finish()
    assert code == 1
    assert "without the child's exit code" in err
