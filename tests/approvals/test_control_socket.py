"""The control socket: SO_PEERCRED against another uid, its private files, and hostile requests.

Another uid is a real process: a forked child that ``setuid``s to ``nobody`` (the tests run as
root) and connects. The kernel records the peer's credentials at ``connect``, so the check is the
one production relies on.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest

from scoped_mcp.approvals.control import peer, protocol
from tests.approvals.support import (
    AGENT_ID,
    AGENT_TYPE,
    cli,
    events,
    filesystem_manifest,
    runtime_dir,
    server_env,
    wait_for_request,
)
from tests.support import running_server

WRITE = "filesystem_write_file"


def nobody() -> int:
    if os.geteuid() != 0:
        pytest.fail("these tests switch uid and must run as root (CI does)")
    return pwd.getpwnam("nobody").pw_uid


def as_nobody(path: Path, payload: bytes) -> bytes:
    """Fork a child that becomes ``nobody``, connects to ``path``, sends ``payload``; its answer."""
    uid = nobody()
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10)
                sock.connect(str(path))
                # A refusal does not wait for the request: read it first, then try to send.
                answer = sock.recv(4096)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(payload)
            os.write(writer, answer)
            code = 0
        except BaseException as exc:
            os.write(writer, f"child failed: {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(writer)
    answer = b""
    while chunk := os.read(reader, 65536):
        answer += chunk
    os.close(reader)
    _pid, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, answer
    return answer


def test_peer_check_refuses_another_uid_and_serves_our_own(tmp_path: Path) -> None:
    """peer.refusal: None for a connection from our uid, a reason naming the uid for nobody's."""
    open_dir = Path(tempfile.mkdtemp(prefix="smcp-peer-", dir="/tmp"))
    open_dir.chmod(0o755)
    path = open_dir / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        path.chmod(0o777)
        listener.listen(2)
        ours = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.connect(str(path))
        conn, _ = listener.accept()
        with ours, conn:
            assert peer.refusal(conn) is None
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            try:
                os.setgroups([])
                os.setgid(nobody())
                os.setuid(nobody())
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.connect(str(path))
                    sock.recv(1)
            finally:
                os._exit(0)
        conn, _ = listener.accept()
        with conn:
            assert peer.peer_uid(conn) == nobody()
            assert peer.refusal(conn) == f"peer uid {nobody()} is not the server's uid 0"
        os.waitpid(child, 0)
    shutil.rmtree(open_dir)


def _socket(tmp_path: Path) -> Path:
    (found,) = (runtime_dir(tmp_path) / "scoped-mcp" / "approvals").glob("*.sock")
    return found


def _ask(path: Path, payload: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(15)
        sock.connect(str(path))
        sock.sendall(payload)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    value: dict[str, Any] = json.loads(answer)
    return value


@pytest.mark.anyio
@pytest.mark.stdio
async def test_server_socket_is_private_refuses_another_uid_and_hostile_lines(
    tmp_path: Path,
) -> None:
    """0700 directory, 0600 socket; nobody is refused and audited; bad lines get short errors."""
    manifest, root = filesystem_manifest(
        tmp_path, {"wait": 0.2, "lifetime": 120, "rules": [{"tools": [WRITE]}]}
    )
    async with running_server(
        manifest,
        agent_id=AGENT_ID,
        agent_type=AGENT_TYPE,
        extra_env=server_env(tmp_path),
        home=tmp_path / "home",
    ) as server:
        await server.error(WRITE, {"path": "h.txt", "content": "x"})
        request = wait_for_request(tmp_path, WRITE)
        path = _socket(tmp_path)
        directory = path.parent
        assert path.name == f"{AGENT_ID}.{path.name.split('.')[1]}.sock"
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_IMODE(directory.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        # Open the path up, as a careless operator might: SO_PEERCRED still refuses nobody.
        for opened in (runtime_dir(tmp_path), directory.parent, directory):
            opened.chmod(0o711)
        path.chmod(0o666)
        answer = as_nobody(path, protocol.encode({"op": "approve", "id": request["id"]}))
        assert json.loads(answer) == {"ok": False, "error": "refused: not the server's user"}
        # The CLI will not use a directory others can reach; private again, it does.
        refused = cli(tmp_path, "list")
        assert refused.returncode == 2
        assert "not private (0700)" in refused.stderr
        for opened in (runtime_dir(tmp_path), directory.parent, directory):
            opened.chmod(0o700)
        hostile = {
            b"x" * (protocol.MAX_LINE + 10) + b"\n": str(protocol.MAX_LINE),
            b"not json\n": "not JSON",
            b"[1, 2]\n": "not a JSON object",
            b'{"op": "rm"}\n': "op must be list, show, approve or deny",
            b'{"op": "approve", "id": "../../etc"}\n': "id must be a request id",
            b'{"op": "deny", "id": "' + request["id"].encode() + b'", "reason": 5}\n': "reason",
            b'{"op": "show", "id": "0000000000"}\n': "no request 0000000000",
        }
        for payload, expected in hostile.items():
            reply = _ask(path, payload)
            assert reply["ok"] is False
            assert expected in reply["error"]
            assert len(reply["error"]) < 120
        assert wait_for_request(tmp_path, WRITE)["id"] == request["id"], "still pending"
        records = server.audit_records()
    assert not (root / "h.txt").exists()
    (refused,) = events(records, "control_refused")
    assert refused["peer_uid"] == nobody()
    assert "not the server's uid" in refused["reason"]
    assert events(records, "approved", "denied") == []
    assert not path.exists(), "the socket is removed when the server stops"
