"""Socket activation: the zygote serves on a listening socket it inherits (LISTEN_FDS, fd 3).

The test plays systemd's part as its documentation describes it: it creates the 0600 socket in a
0700 directory, passes it as fd 3 and sets LISTEN_PID to the pid that runs the zygote.
"""

from __future__ import annotations

import configparser
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.contract_support import RawServer, request
from tests.support import SCOPED_MCP
from tests.zygote_support import READY_SECONDS, handshake, launcher_env

pytestmark = [
    pytest.mark.stdio,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_PEERCRED and /proc"),
]

EXEC_WITH_FD_3 = """
import os, sys
os.dup2(int(sys.argv[1]), 3)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], [sys.argv[2], "zygote"])
"""
UNITS = Path(__file__).parent.parent / "contrib" / "systemd"


def test_an_inherited_listener_serves_starts(tmp_path: Path) -> None:
    """A zygote given its listening socket by the service manager binds nothing itself and
    serves a launcher on that socket."""
    directory = tmp_path / "run" / "scoped-mcp"
    directory.mkdir(parents=True, mode=0o700)
    (tmp_path / "run").chmod(0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(directory / "zygote.sock"))
    (directory / "zygote.sock").chmod(0o600)
    listener.listen(8)
    fd = listener.fileno()
    log = tmp_path / "zygote.log"
    env = launcher_env(tmp_path / "run", tmp_path / "zhome", LISTEN_FDS="1")
    with log.open("wb") as out:
        # exec keeps the pid, so this is the pid the zygote will run as, as systemd sets it.
        zygote = subprocess.Popen(
            [sys.executable, "-c", EXEC_WITH_FD_3, str(fd), SCOPED_MCP],
            env=env,
            pass_fds=(fd,),
            stdout=out,
            stderr=out,
        )
    listener.close()
    manifest = tmp_path / "fs.yml"
    (tmp_path / "base" / "agents" / "a1").mkdir(parents=True)
    manifest.write_text(
        yaml.safe_dump(
            {
                "agent_type": "fsagent",
                "modules": {
                    "filesystem": {"mode": "read", "config": {"base_path": str(tmp_path / "base")}}
                },
            }
        )
    )
    try:
        deadline = time.monotonic() + READY_SECONDS
        while b"listening" not in log.read_bytes():
            assert zygote.poll() is None, log.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert "(inherited)" in log.read_text()
        home = tmp_path / "home"
        env = launcher_env(tmp_path / "run", home, AGENT_ID="a1", AGENT_TYPE="fsagent")
        server = RawServer.start(["--manifest", str(manifest)], env=env, cwd=tmp_path)
        try:
            handshake(server)
            tools = server.ask(request(2, "tools/list"))["result"]["tools"]
            assert "filesystem_read_file" in {tool["name"] for tool in tools}
            assert server.close() == 0
        finally:
            server.kill()
        assert "starting in-process" not in server.stderr()
    finally:
        zygote.send_signal(signal.SIGTERM)
        zygote.wait(timeout=30)


def test_the_shipped_units_listen_where_the_launcher_looks() -> None:
    """The systemd socket unit listens on $XDG_RUNTIME_DIR/scoped-mcp/zygote.sock, private."""
    units = configparser.ConfigParser(strict=False, interpolation=None)
    units.read(UNITS / "scoped-mcp-zygote.socket")
    assert units["Socket"]["ListenStream"] == "%t/scoped-mcp/zygote.sock"
    assert (units["Socket"]["SocketMode"], units["Socket"]["DirectoryMode"]) == ("0600", "0700")
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read(UNITS / "scoped-mcp-zygote.service")
    assert service["Service"]["ExecStart"].endswith("scoped-mcp zygote")
