"""The fork server, driven as agent hosts drive scoped-mcp: ``scoped-mcp --manifest M`` over stdio.

One real zygote serves the module; every launcher is the real console script with a real
environment, and every comparison is against the same start with ``SCOPED_MCP_ZYGOTE=off``.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scoped_mcp import zygote as protocol
from tests.contract_support import RawServer, call, request
from tests.support import SCOPED_MCP
from tests.zygote_support import Zygote, handshake, launcher_env, running_zygote, socket_inodes

pytestmark = [
    pytest.mark.stdio,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_PEERCRED and /proc"),
]

VOLATILE = {"timestamp", "duration_ms", "seq", "prev", "trace_id", "span_id"}


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    with running_zygote(tmp_path_factory.mktemp("zygote")) as running:
        yield running


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A filesystem agent with one file of its own."""
    base = tmp_path / "base"
    (base / "agents" / "z1").mkdir(parents=True)
    (base / "agents" / "z1" / "note.txt").write_text("hello from z1")
    path = tmp_path / "fs.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "agent_type": "fsagent",
                "modules": {"filesystem": {"mode": "read", "config": {"base_path": str(base)}}},
            }
        )
    )
    return path


def start(zygote: Zygote, manifest: Path, home: Path, **extra: str) -> RawServer:
    """``scoped-mcp --manifest M`` as an agent host starts it."""
    home.mkdir(parents=True, exist_ok=True)
    env = zygote.env(home, AGENT_ID="z1", AGENT_TYPE="fsagent", **extra)
    return RawServer.start(["--manifest", str(manifest)], env=env, cwd=home)


def session(server: RawServer, during: Callable[[], object] = lambda: None) -> dict[str, Any]:
    """Handshake, tools/list, an allowed and a refused call, stdin closed: what the host saw."""
    try:
        handshake(server)
        during()
        tools = server.ask(request(2, "tools/list"))["result"]["tools"]
        ok = server.ask(call(3, "filesystem_read_file", path="note.txt"))["result"]
        refused = server.ask(call(4, "filesystem_read_file", path="../../x"))["result"]
        code = server.close()
    finally:
        server.kill()
    return {"tools": sorted(t["name"] for t in tools), "ok": ok, "refused": refused, "exit": code}


def audit(home: Path) -> list[dict[str, Any]]:
    """The agent's audit records without the fields that differ from run to run."""
    path = home / "state" / "scoped-mcp" / "audit" / "z1.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        record.get("chain", {}).pop("nonce", None)
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def chain_nonce(home: Path) -> str:
    """The random nonce the agent's audit chain started with."""
    path = home / "state" / "scoped-mcp" / "audit" / "z1.jsonl"
    nonce: str = json.loads(path.read_text().splitlines()[0])["chain"]["nonce"]
    return nonce


def test_a_start_through_the_zygote_is_the_same_start(
    zygote: Zygote, manifest: Path, tmp_path: Path
) -> None:
    """Through the zygote the host gets the same tools, results, audit records and exit code as
    from an in-process start, and the zygote (not the launcher) ran the server."""
    via = start(zygote, manifest, tmp_path / "via")
    children: list[int] = []
    through = session(via, lambda: children.extend(zygote.wait_for_children(1)))
    assert len(children) == 1
    assert children[0] != via.process.pid
    here = session(start(zygote, manifest, tmp_path / "here", SCOPED_MCP_ZYGOTE="off"))
    assert through == here
    assert through["exit"] == 0
    assert audit(tmp_path / "via") == audit(tmp_path / "here")
    assert "starting in-process" not in via.stderr()
    assert '"reason": "SCOPED_MCP_ZYGOTE=off"' in (tmp_path / "here" / "stderr-0.log").read_text()
    zygote.wait_for_children(0)


def test_a_waiting_launcher_is_a_bare_interpreter(
    zygote: Zygote, manifest: Path, tmp_path: Path
) -> None:
    """Once its start is handed over, the launcher is ``python -I -S zygote_waiter.py`` (no site,
    no scoped_mcp package loaded) whose command line still reads ``scoped-mcp --manifest M``, and
    it keeps no environment: the agent's, credentials and all, is the child's alone."""
    server = start(zygote, manifest, tmp_path / "home")
    try:
        handshake(server)
        cmdline = Path(f"/proc/{server.process.pid}/cmdline")
        deadline = time.monotonic() + 10  # the exec follows the hand-over; under load, later
        while b"zygote_waiter.py" not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        argv = cmdline.read_bytes().decode().split("\0")[:-1]
        maps = Path(f"/proc/{server.process.pid}/maps").read_text()
        assert Path(f"/proc/{server.process.pid}/environ").read_bytes() == b""
        assert argv[1:3] == ["-I", "-S"]
        assert Path(argv[3]).name == "zygote_waiter.py"
        assert argv[5:] == ["scoped-mcp", "--manifest", str(manifest)]
        assert "pydantic_core" not in maps
        assert "_yaml" not in maps
        assert server.close() == 0
    finally:
        server.kill()


def test_each_child_draws_fresh_randomness(zygote: Zygote, manifest: Path, tmp_path: Path) -> None:
    """Two children of one zygote start their audit chains with different random nonces."""
    for name in ("one", "two"):
        assert session(start(zygote, manifest, tmp_path / name))["exit"] == 0
    assert chain_nonce(tmp_path / "one") != chain_nonce(tmp_path / "two")


def test_the_child_holds_none_of_the_zygotes_sockets(
    zygote: Zygote, manifest: Path, tmp_path: Path
) -> None:
    """A child keeps only its launcher's connection: the listener and the zygote's other sockets
    are closed before it reads anything from the launcher."""
    server = start(zygote, manifest, tmp_path / "home")
    try:
        handshake(server)
        [child] = zygote.wait_for_children(1)
        shared = socket_inodes(zygote.process.pid) & socket_inodes(child)
        # The zygote's end of this launcher's connection is the one socket both may hold.
        assert len(shared) <= 1
        assert server.close() == 0
    finally:
        server.kill()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_launcher_stops_the_child_in_order(
    zygote: Zygote, manifest: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    """SIGTERM or SIGINT to the launcher reaches the child, which stops in order (server_stop)
    and exits 0, the launcher with it, as an in-process start does."""
    codes = {}
    for mode, extra in (("via", {}), ("here", {"SCOPED_MCP_ZYGOTE": "off"})):
        server = start(zygote, manifest, tmp_path / mode, **extra)
        try:
            handshake(server)
            server.process.send_signal(signum)
            codes[mode] = server.process.wait(timeout=60)
        finally:
            server.kill()
        last = audit(tmp_path / mode)[-1]
        assert (last["event"], last["reason"]) == ("server_stop", f"signal {signum.name}")
    assert codes == {"via": 0, "here": 0}
    zygote.wait_for_children(0)


def test_sighup_ends_both_ways_alike(zygote: Zygote, manifest: Path, tmp_path: Path) -> None:
    """SIGHUP (which the server does not handle) ends the launcher by the same signal."""
    codes = {}
    for mode, extra in (("via", {}), ("here", {"SCOPED_MCP_ZYGOTE": "off"})):
        server = start(zygote, manifest, tmp_path / mode, **extra)
        try:
            handshake(server)
            server.process.send_signal(signal.SIGHUP)
            codes[mode] = server.process.wait(timeout=60)
        finally:
            server.kill()
    assert codes == {"via": -signal.SIGHUP, "here": -signal.SIGHUP}


def test_killing_the_launcher_stops_the_child(
    zygote: Zygote, manifest: Path, tmp_path: Path
) -> None:
    """SIGKILL of the launcher closes its connection; the child then stops in order."""
    server = start(zygote, manifest, tmp_path / "home")
    try:
        handshake(server)
        [child] = zygote.wait_for_children(1)
        server.process.kill()
        server.process.wait(timeout=30)
        zygote.wait_for_children(0)
    finally:
        server.kill()
    assert not Path(f"/proc/{child}").exists()
    last = audit(tmp_path / "home")[-1]
    assert (last["event"], last["reason"]) == ("server_stop", "signal SIGTERM")


def test_a_configuration_error_exits_2_through_the_zygote(
    zygote: Zygote, manifest: Path, tmp_path: Path
) -> None:
    """A wrong AGENT_TYPE is refused with exit 2 and the same message both ways."""
    results = []
    for extra in ({}, {"SCOPED_MCP_ZYGOTE": "off"}):
        env = zygote.env(tmp_path / "home", AGENT_ID="z1", AGENT_TYPE="other", **extra)
        done = subprocess.run(
            [SCOPED_MCP, "--manifest", str(manifest)],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        lines = [x for x in done.stderr.splitlines() if x.startswith("scoped-mcp:")]
        results.append((done.returncode, lines))
    assert results[0] == results[1]
    assert results[0][0] == 2


@pytest.fixture
def touched_package() -> Iterator[None]:
    """Our package as if it had been upgraded under a running zygote (times put back after)."""
    init = Path(protocol.__file__).with_name("__init__.py")
    before = init.stat()
    os.utime(init, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    try:
        yield
    finally:
        os.utime(init, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.usefixtures("touched_package")
def test_another_installation_falls_back_and_says_how_to_restart(
    zygote: Zygote, manifest: Path, tmp_path: Path
) -> None:
    """A zygote started before the package changed is not used: the start runs in-process and
    one ops-log line says why and how to restart the zygote."""
    result = session(start(zygote, manifest, tmp_path / "home"))
    assert result["exit"] == 0
    assert "filesystem_read_file" in result["tools"]
    stderr = (tmp_path / "home" / "stderr-0.log").read_text()
    [line] = [json.loads(x) for x in stderr.splitlines() if "starting in-process" in x]
    assert "another installation" in line["reason"]
    assert "restart" in line["reason"]
    assert zygote.children() == []


def test_other_interpreter_settings_fall_back(
    zygote: Zygote, manifest: Path, tmp_path: Path
) -> None:
    """A launcher whose PYTHON* start-up settings differ from the zygote's starts in-process."""
    result = session(start(zygote, manifest, tmp_path / "home", PYTHONHASHSEED="7"))
    assert result["exit"] == 0
    assert "PYTHON* settings" in (tmp_path / "home" / "stderr-0.log").read_text()


def test_no_zygote_starts_in_process_as_always(manifest: Path, tmp_path: Path) -> None:
    """With no zygote on the runtime directory a start runs in-process and says nothing more
    than it always did (no zygote is the default, not a fault)."""
    runtime = tmp_path / "run"
    (runtime / "scoped-mcp").mkdir(parents=True, mode=0o700)
    runtime.chmod(0o700)
    env = launcher_env(runtime, tmp_path / "home", AGENT_ID="z1", AGENT_TYPE="fsagent")
    server = RawServer.start(["--manifest", str(manifest)], env=env, cwd=tmp_path)
    try:
        handshake(server)
        assert server.close() == 0
    finally:
        server.kill()
    assert "scoped_mcp.zygote" not in server.stderr()
    assert '"message": "serving"' in server.stderr()


def test_the_zygote_refuses_a_directory_that_is_not_private(tmp_path: Path) -> None:
    """``scoped-mcp zygote`` will not listen in a socket directory others can enter."""
    (tmp_path / "run" / "scoped-mcp").mkdir(parents=True)
    (tmp_path / "run" / "scoped-mcp").chmod(0o755)
    env = launcher_env(tmp_path / "run", tmp_path / "home")
    done = subprocess.run(
        [SCOPED_MCP, "zygote"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "not private" in done.stderr


FOREIGN_CLIENT = r"""
import ctypes, json, os, socket, sys
# The test's temporary directories are private to root: keep the socket's directory open, become
# nobody, and reach the socket through that descriptor (search right on it alone is needed).
directory = os.open(os.path.dirname(sys.argv[1]), os.O_PATH)
os.setgid(int(sys.argv[2])); os.setuid(int(sys.argv[3]))
ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # dumpable again, so /proc/self/fd is ours to use
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.settimeout(30)
conn.connect(f"/proc/self/fd/{directory}/" + os.path.basename(sys.argv[1]))
try:
    conn.sendall(json.dumps({"hello": sys.argv[4]}).encode() + b"\n")
    reply = conn.recv(4096)
except (BrokenPipeError, ConnectionResetError):
    reply = b""
print("uid", os.getuid(), "reply", repr(reply))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_foreign_uid_is_refused(zygote: Zygote) -> None:
    """A process of another uid that reaches the socket gets no answer and no child."""
    nobody = pwd.getpwnam("nobody")
    # Reachable for this test only: the zygote never makes its socket reachable itself.
    (zygote.runtime / "scoped-mcp").chmod(0o711)
    zygote.socket.chmod(0o666)
    try:
        foreign = connect_as(zygote, nobody.pw_uid, nobody.pw_gid)
        # The same path as our own uid is answered: the refusal above is the uid's alone.
        own = connect_as(zygote, os.geteuid(), os.getegid())
    finally:
        zygote.socket.chmod(0o600)
        (zygote.runtime / "scoped-mcp").chmod(0o700)
    assert foreign == f"uid {nobody.pw_uid} reply b''"
    assert own.startswith(f'uid {os.geteuid()} reply b\'{{"zygote": ')
    zygote.wait_for_children(0)


def connect_as(zygote: Zygote, uid: int, gid: int) -> str:
    """What a client running as ``uid`` gets back for a correct hello."""
    done = subprocess.run(
        [
            *(sys.executable, "-c", FOREIGN_CLIENT, str(zygote.socket)),
            *(str(gid), str(uid), protocol.fingerprint()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
