"""A full disk under the audit file fails closed: no call runs whose record cannot be written.

The audit file lives on a 256 KiB tmpfs (or, where mounting is not permitted, the server's
``RLIMIT_FSIZE`` is lowered with ``prlimit``); the filesystem module writes elsewhere. The test
fills the audit filesystem mid-session, makes write calls, frees the space, and checks the log.
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scoped_mcp.audit.records import argument_digest
from scoped_mcp.testing.harness import write_manifest
from tests.contract_support import RawServer, call, child_env
from tests.support import run_cli

pytestmark = pytest.mark.stdio
OUR_ERROR = "audit log unavailable"


class Disk:
    """Makes the audit file's filesystem full and frees it again."""

    def __init__(self, top: Path, how: str) -> None:
        self.top = top
        self.how = how
        self.pid = 0

    def fill(self) -> None:
        if self.how == "tmpfs":
            with contextlib.suppress(OSError), (self.top / "ballast").open("wb", 0) as out:
                while True:
                    out.write(b"x" * 4096)
        else:
            size = (self.top / "a.jsonl").stat().st_size
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (size + 1500, resource.RLIM_INFINITY))

    def free(self) -> None:
        if self.how == "tmpfs":
            (self.top / "ballast").unlink()
        else:
            limits = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE, limits)


@contextlib.contextmanager
def small_disk(top: Path, how: str) -> Iterator[Disk]:
    """A 256 KiB tmpfs at ``top`` (``how="fsize"`` or no permission to mount: a size limit)."""
    top.mkdir()
    if how == "tmpfs":
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(top)],
            capture_output=True,
            check=False,
        )
        how = "tmpfs" if mounted.returncode == 0 else "fsize"
    try:
        yield Disk(top, how)
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", "-l", str(top)], check=False)


def _result(reply: dict[str, Any]) -> tuple[bool, str]:
    assert "result" in reply, reply
    result = reply["result"]
    return bool(result.get("isError")), " ".join(c.get("text", "") for c in result["content"])


@pytest.mark.parametrize("how", ["tmpfs", "fsize"])
def test_full_disk_refuses_calls_and_the_chain_survives(tmp_path: Path, how: str) -> None:
    """While the audit file cannot be written no call changes anything without a record, the
    agent gets our short error, stderr says so once, and after space returns the log continues
    with a gap record and `audit verify` passes."""
    home = tmp_path / "home"
    data = tmp_path / "data"
    with small_disk(tmp_path / "audit", how) as disk:
        audit = disk.top / "a.jsonl"
        manifest = tmp_path / "m.yml"
        write_manifest(
            manifest,
            {
                "agent_type": "writer",
                "modules": {"filesystem": {"mode": "write", "config": {"base_path": str(data)}}},
                "audit": {"path": str(audit)},
            },
        )
        env = child_env(home, AGENT_ID="w1", AGENT_TYPE="writer")
        server = RawServer.start(["--manifest", str(manifest)], env=env, cwd=home)
        disk.pid = server.process.pid
        try:
            server.handshake()
            sent: list[dict[str, Any]] = []
            answers: list[tuple[bool, str]] = []

            def write(n: int) -> None:
                arguments = {
                    "path": f"f{n}.txt",
                    "content": f"call {n} " + "y" * 200,
                    "encoding": "utf-8",
                }
                sent.append(arguments)
                answers.append(
                    _result(server.ask(call(100 + n, "filesystem_write_file", **arguments)))
                )

            write(0)
            disk.fill()
            for n in range(1, 31):
                write(n)
            disk.free()
            for n in range(31, 34):
                write(n)
            assert server.close() == 0
        finally:
            server.kill()
        raw = audit.read_bytes()
        verified = run_cli("audit", "verify", str(audit), env=env)
    assert raw.endswith(b"\n")
    found = [json.loads(line) for line in raw.splitlines()]
    recorded = {r["args"]["sha256"] for r in found if "args" in r}
    refused = [text for failed, text in answers if failed]
    assert refused, "the disk never filled"
    assert all(OUR_ERROR in text for text in refused), refused
    agent_dir = data / "agents" / "w1"
    for n, arguments in enumerate(sent):
        if (agent_dir / f"f{n}.txt").exists():
            assert argument_digest(arguments)["sha256"] in recorded, (
                f"call {n} changed a file unaudited"
            )
    assert all(not failed for failed, _ in answers[-3:])
    gaps = [r for r in found if r["event"] == "audit_gap"]
    # Usually one outage. On tmpfs a full disk still leaves the audit file's last page partly
    # free, so a smaller record (the gap record itself) can fit while a larger one after it
    # does not: a second outage, honestly recorded. Each outage has its gap and its one line.
    assert 1 <= len(gaps) <= 2
    assert all(sum(gap["lost"].values()) > 0 for gap in gaps)
    ops = [json.loads(line) for line in server.stderr().splitlines() if line.startswith("{")]
    failing = [r for r in ops if r.get("message", "").startswith("audit log write failed")]
    assert len(failing) == len(gaps), ops
    assert verified.returncode == 0, verified.stdout
    assert "chain intact" in verified.stdout
    assert "could not be written" in verified.stdout
