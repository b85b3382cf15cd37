"""A sandboxed upstream, driven through the real server over stdio, tries to get out and fails.

The upstream is tests/fixtures/sandbox_mcp/server.py run under bubblewrap by scoped-mcp; every
assertion is about what the child itself saw.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.modules.mcp_proxy_sandbox.support import (
    answer,
    digest,
    escape_manifest,
    escape_processes,
    require_bwrap,
    wait_until,
)
from tests.services.fake_http import Reply, serve_http

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    require_bwrap()


async def test_child_sees_only_its_runtime_and_listed_paths(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    """The child cannot read the agent's files, the secrets file, the audit log or the manifest,
    can read its read_paths, and writes only inside its write_paths."""
    agent_dir = tmp_path / "agents" / "agent-01"
    agent_dir.mkdir(parents=True)
    (agent_dir / "notes.txt").write_text("private notes")
    shared, out = tmp_path / "shared", tmp_path / "out"
    shared.mkdir()
    out.mkdir()
    (shared / "input.txt").write_text("readable")
    scratch = f"/tmp/scratch-{tmp_path.name}"  # in the child's private /tmp
    manifest = escape_manifest(
        tmp_path, sandbox={"read_paths": [str(shared)], "write_paths": [str(out)]}
    )
    async with serve(manifest) as server:
        await answer(server, "status")  # the audit log exists once a call has been made
        audit = server.audit_path
        assert audit.exists()
        for path in (agent_dir / "notes.txt", tmp_path / "secrets.yml", audit, manifest):
            seen = await answer(server, "read_file", path=str(path))
            assert seen == {"ok": False, "error": "ENOENT"}, path
        # The manifest's directory holds only the mount points bwrap made for the listed paths.
        listing = await answer(server, "list_dir", path=str(tmp_path))
        assert listing == {"ok": True, "entries": ["out", "shared"]}
        assert (await answer(server, "read_file", path=str(shared / "input.txt")))["sha256"] == (
            digest("readable")
        )
        refused = await answer(server, "write_file", path=str(shared / "x"), text="no")
        assert refused == {"ok": False, "error": "EROFS"}
        assert (await answer(server, "write_file", path="/usr/x", text="no"))["ok"] is False
        assert (await answer(server, "write_file", path=str(out / "result.txt"), text="yes")) == {
            "ok": True
        }
        assert (await answer(server, "write_file", path=scratch, text="t"))["ok"] is True
        status = await answer(server, "status")
    assert (out / "result.txt").read_text() == "yes"
    assert not (shared / "x").exists()
    assert not os.path.exists(scratch)  # noqa: ASYNC240 - the child has its own /tmp
    assert status["NoNewPrivs"] == "1"
    assert int(status["CapEff"], 16) == 0
    assert status["cwd"] == "/tmp/home"
    assert sorted(status["env"]) == ["HOME", "LC_ALL", "PWD", "TOKEN_FILE"]
    calls = [r for r in server.audit_records() if r.get("event") == "tool_call"]
    assert len(calls) == 12
    assert all(r["outcome"] == "ok" for r in calls)


async def test_network_reaches_only_the_allowlist(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    """An allowlisted loopback server answers through the proxy (plain HTTP and CONNECT); one
    that is not listed is refused with a 403, an ops-log line and a count; a direct connection
    has no route at all."""
    with (
        serve_http(lambda request: Reply(body="allowed service")) as allowed,
        serve_http(lambda request: Reply(body="forbidden service")) as other,
    ):
        manifest = escape_manifest(
            tmp_path, sandbox={"network": {"allow": [f"127.0.0.1:{allowed.port}"]}}
        )
        async with serve(manifest) as server:
            ok = await answer(server, "fetch", url=f"{allowed.url}/hello")
            refused = await answer(server, "fetch", url=f"{other.url}/steal")
            by_name = await answer(server, "fetch", url=f"http://localhost:{allowed.port}/")
            tunnelled = await answer(
                server, "tunnel", host="127.0.0.1", port=allowed.port, path="/t"
            )
            blocked_tunnel = await answer(
                server, "tunnel", host="127.0.0.1", port=other.port, path="/t"
            )
            direct = await answer(server, "connect", host="127.0.0.1", port=allowed.port)
            stderr = server.stderr()
    assert ok == {"ok": True, "status": 200, "body": "allowed service"}
    assert refused["status"] == 403
    assert "not in the sandbox's network allowlist" in refused["body"]
    assert by_name["status"] == 403  # a name is not the address listed
    assert tunnelled == {"ok": True, "status_line": "HTTP/1.1 200 OK"}
    assert blocked_tunnel["ok"] is False
    assert direct["ok"] is False  # its own network namespace: only the bridge on loopback
    assert [r.path for r in allowed.requests] == ["/hello", "/t"]
    assert other.requests == []
    assert allowed.requests[0].header("Connection") == "close"
    assert stderr.count('"sandbox network refused"') == 3
    assert '"refused_total": 3' in stderr


async def test_network_none_has_no_route(tmp_path: Path, serve: Callable[..., Any]) -> None:
    """With the default network: none the child has no proxy and cannot connect anywhere; it
    stops with the server."""
    with serve_http(lambda request: Reply(body="unreachable")) as service:
        async with serve(escape_manifest(tmp_path)) as server:
            direct = await answer(server, "connect", host="127.0.0.1", port=service.port)
            fetched = await answer(server, "fetch", url=f"{service.url}/")
            status = await answer(server, "status")
            running = escape_processes()
        await wait_until(lambda: not escape_processes())  # stopped with the server, reaped
    assert len(running) == 1
    assert direct["ok"] is False
    assert fetched["ok"] is False
    assert "HTTP_PROXY" not in status["env"]
    assert service.requests == []


async def test_memory_limit_stops_a_hog_and_the_module_recovers(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    """Past limits.memory_mb an allocation fails; an upstream that dies of it gives the agent a
    clear error, and the next call runs on a fresh child."""
    manifest = escape_manifest(tmp_path, sandbox={"limits": {"memory_mb": 1024}})
    async with serve(manifest) as server:
        assert (await answer(server, "hog", megabytes=64)) == {"ok": True}
        assert (await answer(server, "hog", megabytes=2048)) == {
            "ok": False,
            "error": "MemoryError",
        }
        error = await server.error("up_hog_abort", {"megabytes": 2048})
        after = await answer(server, "status")
    assert "upstream call failed" in error
    assert after["NoNewPrivs"] == "1"
