"""The server over streamable HTTP to the official TypeScript SDK's client."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tests.http.issuer import running_issuer
from tests.http.support import TOKEN, free_port, serving
from tests.http.test_jwt_auth import jwt_manifest, resource
from tests.http.test_serve_http import filesystem_manifest
from tests.http.ts_client import ensure_sdk, run_client
from tests.stdio.test_secret_leaks import leaks

FILESYSTEM_TOOLS = [
    "filesystem_delete_file",
    "filesystem_list_dir",
    "filesystem_read_file",
    "filesystem_write_file",
]


def test_typescript_client_lists_and_calls_tools_and_is_refused_without_the_token(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """The TS SDK client with the bearer token in requestInit headers lists and calls tools
    (audited with its address); without the token, or with a wrong one, it gets a 401."""
    node = ensure_sdk()
    manifest = filesystem_manifest(tmp_path, write_manifest)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    calls = [
        {"name": "filesystem_write_file", "arguments": {"path": "ts.txt", "content": "from ts"}},
        {"name": "filesystem_read_file", "arguments": {"path": "ts.txt"}},
    ]
    with serving(manifest, tmp_path / "home", agent_type="build") as server:
        served = run_client(node, server.url, token=TOKEN, calls=calls, env=env)
        missing = run_client(node, server.url, token=None, env=env)
        wrong = run_client(node, server.url, token="w" * 40, env=env)
        assert server.stop() == 0
    assert sorted(served["tools"]) == FILESYSTEM_TOOLS
    written, read = served["results"]
    assert not written.get("isError")
    assert read["content"][0]["text"] == "from ts"
    assert (tmp_path / "agents" / "agent-01" / "ts.txt").read_text() == "from ts"
    assert missing["error"] == {"code": 401, "name": "StreamableHTTPError"}
    assert wrong["error"] == {"code": 401, "name": "StreamableHTTPError"}
    calls_audited = server.audit_records("tool_call")
    assert [c["tool"] for c in calls_audited] == ["filesystem_write_file", "filesystem_read_file"]
    assert all(c["client"].startswith("127.0.0.1:") for c in calls_audited)
    reasons = {r["reason"] for r in server.audit_records("http_refused")}
    assert reasons == {"missing token", "wrong token"}
    everything = server.audit_path.read_text() + server.stderr()
    assert leaks(TOKEN, "audit and ops log", everything) == []


def test_typescript_client_with_a_jwt_from_the_issuer(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """With serve.http.auth: jwt, the TS SDK client presenting the issuer's JWT for this
    resource and agent lists and calls tools; a JWT for another agent is refused (403)."""
    node = ensure_sdk()
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    with running_issuer() as issuer:
        manifest = jwt_manifest(tmp_path, write_manifest, issuer, port)
        token = issuer.token("ec-1", audience=resource(port), subject="agent-01")
        other = issuer.token("ec-1", audience=resource(port), subject="agent-02")
        address = f"127.0.0.1:{port}"
        with serving(manifest, tmp_path / "home", agent_type="build", address=address) as server:
            calls = [{"name": "filesystem_list_dir", "arguments": {"path": "."}}]
            served = run_client(node, server.url, token=token, calls=calls, env=env)
            refused = run_client(node, server.url, token=other, env=env)
            assert server.stop() == 0
    assert sorted(served["tools"]) == FILESYSTEM_TOOLS
    assert not served["results"][0].get("isError")
    assert refused["error"] == {"code": 403, "name": "StreamableHTTPError"}
    assert [r["reason"] for r in server.audit_records("http_refused")] == ["agent mismatch"]
    assert leaks(token, "audit and ops log", server.audit_path.read_text() + server.stderr()) == []
