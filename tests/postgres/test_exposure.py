"""A leaked credential is answered: recorded, its lease revoked at once, a fresh one issued.

The real server runs over stdio with ``http_proxy`` calling a loopback service that echoes the
Authorization header it received (raw, hex and base64), and ``pgprobe`` logging in to PostgreSQL.
Both use the same dynamic PostgreSQL credential from real OpenBao; a second service is sent a
static ``env:`` token. The test learns the issued values from PostgreSQL's statement log, never
from the agent's side.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from scoped_mcp.testing.harness import write_manifest
from tests.contract_support import FIXTURES
from tests.postgres.conftest import Database
from tests.postgres.test_dynamic_db import PGPROBE, sha256
from tests.services.fake_http import Recorded, Reply, serve_http
from tests.stdio.test_secret_leaks import leaks
from tests.support import run_cli, running_server

AGENT_ID = "leak-01"
KEYS = ["PG_PASSWORD", "PG_USER"]


def echo_credential(request: Recorded) -> Reply:
    """An upstream that repeats its credential, in three encodings."""
    seen = (request.header("authorization") or "").encode()
    return Reply(
        200, {"saw": seen.decode(), "hex": seen.hex(), "b64": base64.b64encode(seen).decode()}
    )


def manifest(tmp_path: Path, database: Database, echo_url: str) -> Path:
    path = f"vault-dynamic:database/creds/agent-{AGENT_ID}"
    services = {
        "echo": {
            "base_url": echo_url,
            "auth": {"key": "PG_PASSWORD"},
            "allow_private_networks": True,
        },
        "static": {
            "base_url": echo_url,
            "auth": {"key": "ECHO_TOKEN"},
            "allow_private_networks": True,
        },
    }
    spec = {
        "agent_type": "research",
        "modules": {
            "pgprobe": {**PGPROBE, "config": {"port": database.postgres.port}},
            "http_proxy": {"config": {"services": services}},
        },
        "credentials": {
            "source": "env",
            "vault": {
                "addr": database.bao.addr,
                "auth": "token",
                "token_env": "VAULT_TOKEN",
                "timeout": 2,
            },
            "keys": {"PG_USER": f"{path}#username", "PG_PASSWORD": f"{path}#password"},
        },
    }
    target = tmp_path / "leak.yml"
    write_manifest(target, spec)
    return target


def exposed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["event"] == "credential_exposed"]


@pytest.mark.anyio
@pytest.mark.stdio
async def test_an_echoed_lease_is_revoked_at_once_and_the_next_call_gets_a_new_login(
    database: Database, tmp_path: Path
) -> None:
    """An upstream echoing the leased password makes a credential_exposed record; the login is
    gone before the answer arrives, the next call logs in as a new role, and no value leaks."""
    role = f"agent-{AGENT_ID}"
    database.add_role(role, default_ttl="1m", max_ttl="5m")
    postgres = database.postgres
    static = "tok" + secrets.token_urlsafe(24)
    home = tmp_path / "home"
    env = {"VAULT_TOKEN": database.token(role), "ECHO_TOKEN": static, "PYTHONPATH": str(FIXTURES)}
    before = postgres.issued_credentials()
    with serve_http(echo_credential) as echo:
        target = manifest(tmp_path, database, echo.url)
        async with running_server(
            target, agent_id=AGENT_ID, agent_type="research", extra_env=env, home=home
        ) as server:
            first = await server.call("pgprobe_whoami")
            ((user, password),) = postgres.issued_credentials().items() - before.items()
            started = time.monotonic()
            echoed = await server.call("http_proxy_get", {"service": "echo", "path": "x"})
            answered = time.monotonic() - started
            gone_at_answer = not postgres.role_exists(user)
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                postgres.connect(user, password)
            second = await server.call("pgprobe_whoami")
            static_echo = await server.call("http_proxy_get", {"service": "static", "path": "x"})
            records = server.audit_records()
        stderr = server.stderr()
        records = server.audit_records()
        received = [r.header("authorization") for r in echo.requests]
    issued = postgres.issued_credentials().items() - before.items()
    (new_user,) = {u for u, _ in issued} - {user}
    assert gone_at_answer, "the exposed login must be revoked before the answer goes out"
    assert answered < 5.0
    assert received[0] == f"Bearer {password}"
    assert first == {"user_sha256": sha256(user), "rows": 3}
    assert second == {"user_sha256": sha256(new_user), "rows": 3}
    (dynamic, static_record) = exposed(records)
    assert dynamic["key"] == KEYS
    assert dynamic["source"] == f"vault-dynamic:database/creds/{role}"
    assert (dynamic["dynamic"], dynamic["remedy"]) == (True, "revoked")
    assert dynamic["tool"] == "http_proxy_get"
    assert dynamic["module"] == "http_proxy"
    assert static_record["key"] == ["ECHO_TOKEN"]
    assert (static_record["dynamic"], static_record["remedy"]) == (False, "rotate")
    revoked = [r for r in records if r["event"] == "credential" and r["action"] == "revoked"]
    assert revoked
    assert revoked[0]["lease"] == dynamic["lease"]
    assert "rotate it in its backend" in stderr
    assert "ECHO_TOKEN" in stderr
    texts = {
        "echoed": json.dumps(echoed),
        "static_echo": json.dumps(static_echo),
        "stderr": stderr,
        "audit": json.dumps(records),
    }
    for where, text in texts.items():
        for value in (password, user, static):
            assert not leaks(value, where, text)
    audit_file = home / "state" / "scoped-mcp" / "audit" / f"{AGENT_ID}.jsonl"
    check = run_cli(
        "creds", "check", "--manifest", str(target), "--agent-id", AGENT_ID,
        "--audit", str(audit_file), "--json",
        env={**env, "PATH": "/usr/bin:/bin", "HOME": str(home)},
    )  # fmt: skip
    report = json.loads(check.stdout)
    rotate = [e for e in report["exposed"] if e["rotate"]]
    assert [e["keys"] for e in rotate] == [["ECHO_TOKEN"]]
    assert any("ECHO_TOKEN" in w and "rotate it in env" in w for w in report["warnings"])
    assert check.returncode == 2
    assert not leaks(static, "creds check", check.stdout + check.stderr)
