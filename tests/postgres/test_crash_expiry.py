"""A server killed with SIGKILL leaves its Vault token and database login usable only briefly.

The real server logs in with AppRole (the bootstrapped role grants 1 h tokens) and is issued a
PostgreSQL role whose Vault role grants 1 h leases; ``credentials.vault.lease_ttl`` is 8 s. It
is then killed mid-session with SIGKILL, so nothing is revoked, and the test measures how long
the token (looked up by its accessor) and the database login keep working. Both must end within
the configured TTL plus one renewal period (at most the TTL again).
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import psycopg
import pytest

from scoped_mcp.testing.harness import write_manifest
from tests.contract_support import RawServer, call, child_env
from tests.postgres.conftest import Database, Postgres
from tests.postgres.test_dynamic_db import PGPROBE, valid_until
from tests.vault.conftest import Bao

LEASE_TTL = 8.0
BOUND = LEASE_TTL * 2
"""The TTL plus one renewal period (renewals run at about two thirds of the TTL)."""
ROLE = "scoped-mcp-research"
"""The database role the bootstrapped research policy may read (scoped-mcp-agent.hcl)."""


def manifest(tmp_path: Path, database: Database) -> Path:
    path = f"vault-dynamic:database/creds/{ROLE}"
    spec = {
        "agent_type": "research",
        "modules": {"pgprobe": {**PGPROBE, "config": {"port": database.postgres.port}}},
        "credentials": {
            "source": "env",
            "vault": {
                "addr": database.bao.addr,
                "auth": "approle",
                "role_id_env": "VAULT_ROLE_ID",
                "secret_id_env": "VAULT_SECRET_ID",
                "lease_ttl": LEASE_TTL,
                "timeout": 2,
            },
            "keys": {"PG_USER": f"{path}#username", "PG_PASSWORD": f"{path}#password"},
        },
    }
    target = tmp_path / "crash.yml"
    write_manifest(target, spec)
    return target


def login_works(postgres: Postgres, user: str, password: str) -> bool:
    try:
        postgres.connect(user, password).close()
    except psycopg.OperationalError:
        return False
    return True


def usable_for(
    bao: Bao, postgres: Postgres, accessor: str, user: str, password: str
) -> dict[str, float]:
    """Seconds from now until the token and the login stop working (polled every 0.2 s)."""
    started = time.monotonic()
    ended: dict[str, float] = {}
    while len(ended) < 2 and time.monotonic() - started < BOUND * 3:
        if "token" not in ended and bao.lookup_accessor(accessor) is None:
            ended["token"] = time.monotonic() - started
        if "login" not in ended and not login_works(postgres, user, password):
            ended["login"] = time.monotonic() - started
        time.sleep(0.2)
    return ended


def wait_for_renewal(audit: Path, *, timeout: float) -> None:
    """Until the audit file holds a lease renewal (or ``timeout`` seconds have passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if '"action":"renewed"' in audit.read_text():
            return
        time.sleep(0.2)


@pytest.mark.stdio
def test_sigkill_leaves_token_and_login_usable_no_longer_than_the_lease_ttl(
    database: Database, tmp_path: Path
) -> None:
    """Token and login are held to lease_ttl from the start, and die within TTL + one renewal
    period of a SIGKILL, although the AppRole role and the database role grant an hour."""
    database.add_role(ROLE, default_ttl="1h", max_ttl="24h")
    bao, postgres = database.bao, database.postgres
    bao.bootstrap("research", TOKEN_TTL="1h", TOKEN_MAX_TTL="24h")
    home = tmp_path / "home"
    env = child_env(
        home,
        AGENT_ID="crash-01",
        AGENT_TYPE="research",
        VAULT_ROLE_ID=bao.role_id("research"),
        VAULT_SECRET_ID=bao.secret_id("research"),
    )
    before = postgres.issued_credentials()
    server = RawServer.start(
        ["--manifest", str(manifest(tmp_path, database))], env=env, cwd=tmp_path
    )
    try:
        server.handshake()
        first = server.ask(call(10, "pgprobe_whoami"))["result"]["structuredContent"]
        ((user, password),) = postgres.issued_credentials().items() - before.items()
        deadline = valid_until(postgres, user)
        now = datetime.datetime.now(datetime.UTC)
        # Past one renewal: the session runs on renewed, still short, leases.
        audit = home / "state" / "scoped-mcp" / "audit" / "crash-01.jsonl"
        wait_for_renewal(audit, timeout=LEASE_TTL * 3)
        second = server.ask(call(11, "pgprobe_whoami"))["result"]["structuredContent"]
        server.process.kill()
        server.process.wait(timeout=10)
        records = [json.loads(line) for line in audit.read_text().splitlines()]
        (login,) = [r for r in records if r.get("action") == "token_login"]
        ended = usable_for(bao, postgres, login["accessor"], user, password)
    finally:
        server.kill()
    assert first == second
    (issued,) = [r for r in records if r.get("action") == "issued"]
    assert issued["lease_ttl"] <= LEASE_TTL
    # The database engine sets VALID UNTIL 5 s past the lease's end; it drops the role at the end.
    assert (deadline - now).total_seconds() <= LEASE_TTL + 5 + 2
    renewed = [r for r in records if r.get("action") == "renewed"]
    assert renewed, "the lease should have been renewed before the kill"
    assert all(r["lease_ttl"] <= LEASE_TTL for r in renewed)
    assert set(ended) == {"token", "login"}, ended
    assert ended["token"] <= BOUND, ended
    assert ended["login"] <= BOUND, ended
    assert not postgres.role_exists(user)
