"""A gated tool's dynamic PostgreSQL credential (real OpenBao database engine + PostgreSQL).

The role is issued only once the call is approved, exists while the call runs and is revoked when
it returns; a denied call sends OpenBao no request at all (counted by a reverse
proxy in front of OpenBao that records every request it forwards).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from scoped_mcp.testing.harness import write_manifest
from tests.approvals.support import (
    AGENT_ID,
    AGENT_TYPE,
    cli,
    events,
    server_env,
    wait_for_request,
)
from tests.contract_support import FIXTURES
from tests.postgres.conftest import Database
from tests.services.checks import assert_clean
from tests.services.fake_http import Recorded, Reply, serve_http
from tests.support import running_server

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]
TOOL = "pgheld_hold"
ROLE = f"agent-{AGENT_ID}"


class RecordingBao:
    """A reverse proxy on 127.0.0.1 in front of OpenBao that records every request it forwards."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.seen: list[str] = []
        self._client = httpx.Client(base_url=upstream, timeout=30, trust_env=False)

    def __call__(self, request: Recorded) -> Reply:
        self.seen.append(f"{request.method} {request.path}")
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-vault")}
        answer = self._client.request(
            request.method, request.target, headers=headers, content=request.body
        )
        kept = {"Content-Type": answer.headers.get("content-type", "application/json")}
        return Reply(answer.status_code, answer.content, kept)


@pytest.fixture
def bao_proxy(database: Database) -> Iterator[tuple[RecordingBao, str]]:
    """The recording proxy and its URL (the server's vault.addr)."""
    recorder = RecordingBao(database.bao.addr)
    with serve_http(recorder) as proxy:
        yield recorder, proxy.url


def manifest(tmp_path: Path, database: Database, vault_addr: str) -> Path:
    path = "vault-dynamic:database/creds/agent-{agent_id}"
    data = {
        "agent_type": AGENT_TYPE,
        "modules": {
            "pgheld": {
                "type": "db_modules.pgheld:PgHeldModule",
                "mode": "write",
                "config": {"port": database.postgres.port},
            }
        },
        "credentials": {
            "source": "env",
            "vault": {"addr": vault_addr, "auth": "token", "token_env": "VAULT_TOKEN"},
            "keys": {"PG_USER": f"{path}#username", "PG_PASSWORD": f"{path}#password"},
        },
        "approvals": {"wait": 30, "lifetime": 60, "rules": [{"modules": ["pgheld"]}]},
    }
    return write_manifest(tmp_path / "pg-gated.yml", data)


async def test_credential_leased_for_the_approved_call_only(
    database: Database, bao_proxy: tuple[RecordingBao, str], tmp_path: Path
) -> None:
    """Denied: no OpenBao request, no role. Approved: a role during the call, gone after it."""
    database.add_role(ROLE, default_ttl="1m", max_ttl="5m")
    env = server_env(tmp_path, PYTHONPATH=str(FIXTURES), VAULT_TOKEN=database.token(ROLE))
    postgres = database.postgres
    before = postgres.issued_credentials()
    release = tmp_path / "release"
    seen: dict[str, Any] = {}

    def approve_and_look() -> None:
        request = wait_for_request(tmp_path, TOOL)
        done = cli(tmp_path, "approve", request["id"])
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            issued = postgres.issued_credentials().items() - before.items()
            if issued:
                ((user, _password),) = issued
                seen["user"] = user
                seen["during"] = postgres.role_exists(user)
                break
            time.sleep(0.1)
        release.touch()

    async with running_server(
        manifest(tmp_path, database, bao_proxy[1]),
        agent_id=AGENT_ID,
        agent_type=AGENT_TYPE,
        extra_env=env,
        home=tmp_path / "home",
    ) as server:
        recorder = bao_proxy[0]
        started = len(recorder.seen)
        assert not [r for r in recorder.seen if "/database/creds/" in r]
        # Nothing was issued at start-up for the gated module's keys.
        assert postgres.issued_credentials() == before
        async with anyio.create_task_group() as group:
            group.start_soon(
                anyio.to_thread.run_sync,
                lambda: _deny(tmp_path),
            )
            denial = await server.error(TOOL, {"release": str(tmp_path / "never")})
        assert denial.endswith("was denied: no")
        assert recorder.seen[started:] == [], "a denied call must not reach OpenBao"
        assert postgres.issued_credentials() == before
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, approve_and_look)
            result = await server.call(TOOL, {"release": str(release)})
        user = seen["user"]
        assert seen["during"] is True, "the role exists while the call runs"
        assert postgres.wait_role_gone(user, timeout=10), "revoked when the call returned"
        records = server.audit_records()
        stderr = server.stderr()
    assert result["rows"] == 3
    assert f"GET /v1/database/creds/{ROLE}" in recorder.seen
    revokes = [r for r in recorder.seen if r.startswith("PUT /v1/sys/leases/revoke/")]
    assert len(revokes) == 1, recorder.seen
    creds = [
        r for r in records if r.get("event") == "credential" and r.get("backend") == "vault-dynamic"
    ]
    assert [r["action"] for r in creds] == ["issued", "revoked"]
    assert all(r.get("per_call") is True for r in creds[:1])
    assert creds[0]["lease"] == creds[1]["lease"]
    approved = events(records, "approved")
    calls = [r for r in records if r.get("event") == "tool_call" and r.get("tool") == TOOL]
    assert [c["outcome"] for c in calls] == ["denied", "ok"]
    assert calls[1]["approval"] == approved[0]["approval"]
    issued = postgres.issued_credentials().items() - before.items()
    ((_user, password),) = issued
    for text in (stderr, json.dumps(records), denial):
        assert_clean(text, [password])
        assert user not in text


def _deny(tmp_path: Path) -> None:
    request = wait_for_request(tmp_path, TOOL)
    done = cli(tmp_path, "deny", request["id"], "--reason", "no")
    assert done.returncode == 0, done.stderr
