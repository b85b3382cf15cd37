"""Dynamic PostgreSQL credentials from OpenBao's database engine, end to end.

Backend-level tests drive the real ``CredentialBroker`` and ``VaultBackend`` against the dev
server and the throwaway cluster (tests/postgres/conftest.py); the stdio test runs the real server
with a module that logs in with the leased role. The broker's token is an operator token holding
only the role's ``scoped-mcp-db-<role>`` policy and the default one, so every issue and
revocation also proves that policy is enough.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import psycopg
import pytest

from scoped_mcp.credentials.backends.vault import VaultBackend
from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.credentials.broker import CredentialBroker
from scoped_mcp.credentials.plan import KeyPlan
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.credentials.view import ModuleCredentials
from scoped_mcp.redaction import Redactor
from scoped_mcp.testing.harness import write_manifest
from tests.contract_support import RawServer, call, child_env
from tests.postgres.conftest import ROWS, VAULT_ADMIN, Database, Postgres

KEYS = ("PG_PASSWORD", "PG_USER")
AGENT_ID = "stdio-01"
PGPROBE = {"type": "db_modules.pgprobe:PgProbeModule"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Events:
    """Collects the broker's events (action and fields) and wakes whoever waits for a state."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        self.waiters: list[tuple[Callable[[], bool], anyio.Event]] = []

    def __call__(self, action: str, **fields: Any) -> None:
        self.items.append((action, fields))
        for reached, event in self.waiters:
            if reached():
                event.set()

    def of(self, action: str) -> list[dict[str, Any]]:
        return [fields for name, fields in self.items if name == action]


def make_broker(
    database: Database, role: str, *, default_ttl: str, max_ttl: str
) -> tuple[CredentialBroker, ModuleCredentials, Events]:
    """A broker whose module "db" declares PG_USER and PG_PASSWORD from one dynamic path."""
    path = database.add_role(role, default_ttl=default_ttl, max_ttl=max_ttl)
    spec = VaultSpec(addr=database.bao.addr, auth="token", token_env="TOKEN", timeout=2)
    backend = VaultBackend(spec, {"TOKEN": database.token(role)})
    plans = {
        "db": {
            "PG_USER": KeyPlan("db", "PG_USER", SecretRef("vault-dynamic", path, "username"), True),
            "PG_PASSWORD": KeyPlan(
                "db", "PG_PASSWORD", SecretRef("vault-dynamic", path, "password"), True
            ),
        }
    }
    events = Events()
    broker = CredentialBroker(
        plans=plans,
        backends={"vault": backend, "vault-dynamic": backend},
        ttl=300,
        redactor=Redactor(),
        on_event=events,
    )
    return broker, ModuleCredentials(broker, "db", frozenset()), events


async def credentials(view: ModuleCredentials) -> tuple[str, str]:
    """The username and password the module sees now."""
    async with view.use("PG_USER") as user, view.use("PG_PASSWORD") as password:
        return user.text(), password.text()


async def login(postgres: Postgres, user: str, password: str) -> str:
    """current_user after logging in (off the event loop, so maintenance keeps running)."""
    return await anyio.to_thread.run_sync(postgres.current_user, user, password)


async def maintain_until(
    broker: CredentialBroker, events: Events, reached: Callable[[], bool], *, seconds: float
) -> None:
    """Run the broker's maintenance loop until an event makes ``reached()`` true, or ``seconds``."""
    done = anyio.Event()
    events.waiters.append((reached, done))
    async with anyio.create_task_group() as group:
        group.start_soon(broker.maintain)
        with anyio.move_on_after(seconds):
            await done.wait()
        group.cancel_scope.cancel()


def valid_until(postgres: Postgres, user: str) -> datetime.datetime:
    (row,) = postgres.admin_query("select rolvaliduntil from pg_roles where rolname = %s", user)
    value = row[0]
    assert isinstance(value, datetime.datetime)
    return value


def test_database_script_configures_an_engine_that_issues_login_roles(database: Database) -> None:
    """database.sh leaves a working engine: a read of the role's creds logs in to PostgreSQL."""
    answer = database.bao.admin.read("database/creds/agent-smoke")
    user, password = answer["data"]["username"], answer["data"]["password"]
    assert database.postgres.current_user(user, password) == user
    database.bao.admin.sys.revoke_lease(answer["lease_id"])
    assert database.postgres.wait_role_gone(user)


def test_database_script_rerun_adds_roles_to_the_connection_once(database: Database) -> None:
    """Re-running database.sh without a password keeps the connection and lists each role once."""
    database.add_role("agent-smoke", default_ttl="30s", max_ttl="60s")
    database.add_role("agent-extra", default_ttl="30s", max_ttl="60s")
    allowed = database.bao.admin.read("database/config/postgresql")["data"]["allowed_roles"]
    assert set(database.roles) <= set(allowed)
    assert len(allowed) == len(set(allowed))
    policy = database.bao.admin.sys.read_policy("scoped-mcp-db-agent-extra")["data"]["rules"]
    assert 'path "database/creds/agent-extra"' in policy
    assert 'path "sys/leases/revoke/database/creds/agent-extra/*"' in policy


def test_database_script_refuses_bad_names_and_a_missing_connection(database: Database) -> None:
    """database.sh exits 2 with a reason for an unsafe role name, or no connection to extend."""
    bad = database.run_script('agent"; DROP ROLE x; --')
    assert bad.returncode == 2
    assert "must be lowercase letters, digits, - and _" in bad.stderr
    empty = database.run_script("agent-x", MOUNT="db-empty")
    assert empty.returncode == 2
    assert "no connection db-empty/config/postgresql yet" in empty.stderr


def test_rotated_root_password_is_known_only_to_openbao(database: Database) -> None:
    """With ROTATE_ROOT=1 the password given to database.sh no longer logs in."""
    postgres = database.postgres
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        postgres.connect(VAULT_ADMIN, postgres.vault_admin_password)


@pytest.mark.anyio
async def test_both_keys_share_one_lease_and_the_issued_role_logs_in(database: Database) -> None:
    """PG_USER and PG_PASSWORD come from one issue (one lease), and that role logs in."""
    broker, view, events = make_broker(database, "agent-share", default_ttl="1m", max_ttl="2m")
    try:
        user, password = await credentials(view)
        assert broker.fetch_count == 1
        (issued,) = events.of("issued")
        assert issued["key"] == list(KEYS)
        assert issued["backend"] == "vault-dynamic"
        assert issued["lease"].startswith("database/creds/agent-share/…")
        assert issued["renewable"] is True
        assert await login(database.postgres, user, password) == user
        assert user.startswith("v-")
        assert password not in repr(events.items)
    finally:
        await broker.close()


@pytest.mark.anyio
async def test_close_revokes_the_lease_and_the_role_is_dropped(database: Database) -> None:
    """After broker.close() the lease is revoked (audited), the role is gone and cannot log in."""
    broker, view, events = make_broker(database, "agent-close", default_ttl="1m", max_ttl="2m")
    user, password = await credentials(view)
    assert database.postgres.role_exists(user)
    await broker.close()
    (revoked,) = events.of("revoked")
    assert revoked["key"] == list(KEYS)
    assert revoked["lease"] == events.of("issued")[0]["lease"]
    # Vault ran the revocation statements before answering; no waiting for the lease to expire.
    assert not database.postgres.role_exists(user)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        database.postgres.connect(user, password)


@pytest.mark.anyio
async def test_lease_is_renewed_and_the_same_role_keeps_logging_in(database: Database) -> None:
    """A 4 s lease outlives 6 s: renewed in the background, same role, its VALID UNTIL moved."""
    broker, view, events = make_broker(database, "agent-renew", default_ttl="4s", max_ttl="1m")
    postgres = database.postgres
    try:
        user, password = await credentials(view)
        first_deadline = valid_until(postgres, user)
        with anyio.move_on_after(6.2):
            await broker.maintain()
        assert len(events.of("renewed")) >= 2, events.items
        assert events.of("rotated") == []
        assert events.of("failed") == []
        assert await credentials(view) == (user, password)
        assert broker.fetch_count == 1
        assert await login(postgres, user, password) == user
        assert valid_until(postgres, user) > first_deadline
    finally:
        await broker.close()
    assert not postgres.role_exists(user)


@pytest.mark.anyio
async def test_lease_is_replaced_before_max_ttl_and_the_old_role_dropped(
    database: Database,
) -> None:
    """Near max_ttl (8 s) a new role is issued, and the old one revoked after a short overlap."""
    broker, view, events = make_broker(database, "agent-rotate", default_ttl="4s", max_ttl="8s")
    postgres = database.postgres
    try:
        old_user, old_password = await credentials(view)
        await maintain_until(broker, events, lambda: bool(events.of("revoked")), seconds=10)
        (rotated,) = events.of("rotated")
        assert rotated["key"] == list(KEYS)
        (revoked,) = events.of("revoked")
        assert revoked["lease"] == events.of("issued")[0]["lease"] != rotated["lease"]
        new_user, new_password = await credentials(view)
        assert new_user != old_user
        assert new_password != old_password
        assert await login(postgres, new_user, new_password) == new_user
        assert postgres.wait_role_gone(old_user, timeout=2)
        assert broker.fetch_count == 2
    finally:
        await broker.close()
    assert not postgres.role_exists(new_user)


# -- through the real server over stdio ------------------------------------------------------


def pgprobe_manifest(tmp_path: Path, database: Database) -> Path:
    """A manifest: module pgprobe, PG_USER/PG_PASSWORD from agent-{agent_id}'s dynamic path."""
    path = "vault-dynamic:database/creds/agent-{agent_id}"
    manifest = {
        "agent_type": "research",
        "modules": {"pgprobe": {**PGPROBE, "config": {"port": database.postgres.port}}},
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
    target = tmp_path / "pgprobe.yml"
    write_manifest(target, manifest)
    return target


@pytest.mark.stdio
def test_server_logs_in_with_a_leased_role_and_revokes_it_on_exit(
    database: Database, tmp_path: Path
) -> None:
    """Over stdio a tool logs in with the leased role; on exit the role is gone and never shown."""
    role = f"agent-{AGENT_ID}"
    database.add_role(role, default_ttl="1m", max_ttl="5m")
    home = tmp_path / "home"
    env = child_env(
        home, AGENT_ID=AGENT_ID, AGENT_TYPE="research", VAULT_TOKEN=database.token(role)
    )
    before = database.postgres.issued_credentials()
    server = RawServer.start(
        ["--manifest", str(pgprobe_manifest(tmp_path, database))], env=env, cwd=tmp_path
    )
    try:
        server.handshake()
        first = server.ask(call(10, "pgprobe_whoami"))["result"]["structuredContent"]
        second = server.ask(call(11, "pgprobe_whoami"))["result"]["structuredContent"]
        # The test learns the values from PostgreSQL's statement log, never from the agent's side.
        issued = database.postgres.issued_credentials().items() - before.items()
        ((user, password),) = issued
        assert database.postgres.role_exists(user)
        assert server.close() == 0
    finally:
        server.kill()
    assert first == second == {"user_sha256": sha256(user), "rows": len(ROWS)}
    assert not database.postgres.role_exists(user), "the lease must be revoked at shutdown"
    audit_text = (home / "state" / "scoped-mcp" / "audit" / f"{AGENT_ID}.jsonl").read_text()
    outputs = {
        "stdout": "".join(server.stdout_lines),
        "stderr": server.stderr(),
        "audit": audit_text,
    }
    for where, text in outputs.items():
        assert user not in text, where
        assert password not in text, where
    records = [json.loads(line) for line in audit_text.splitlines()]
    credential = {r["action"]: r for r in records if r["event"] == "credential"}
    for action in ("issued", "revoked"):
        assert credential[action]["key"] == list(KEYS)
        assert credential[action]["backend"] == "vault-dynamic"
        assert credential[action]["source"] == f"vault-dynamic:database/creds/{role}"
    assert credential["issued"]["lease"] == credential["revoked"]["lease"]
