"""Dynamic PostgreSQL credentials from OpenBao's database engine, end to end.

Backend-level tests drive the real ``CredentialBroker`` and ``VaultBackend`` against the dev
server and the throwaway cluster (tests/postgres/conftest.py); the stdio test runs the real server
with a module that logs in with the leased role. The broker's token is an operator token holding
only the role's ``scoped-mcp-db-<role>`` policy (and the default one), so every renewal and revocation also proves that
policy is enough.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import psycopg
import pytest

from scoped_mcp.credentials.backends.vault import VaultBackend
from scoped_mcp.credentials.broker import CredentialBroker, KeyPlan
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.credentials.view import ModuleCredentials
from scoped_mcp.manifest import VaultSpec
from scoped_mcp.redaction import Redactor
from tests.postgres.conftest import VAULT_ADMIN, Database, Postgres

KEYS = ("PG_PASSWORD", "PG_USER")


class Events:
    """Collects the broker's events (action and fields)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, action: str, **fields: Any) -> None:
        self.items.append((action, fields))

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
    broker: CredentialBroker, done: Callable[[], bool], *, timeout: float
) -> None:
    """Run the broker's maintenance loop until ``done()`` holds or ``timeout`` passes."""
    async with anyio.create_task_group() as group:
        group.start_soon(broker.maintain)
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            await anyio.sleep(0.1)
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
        assert user.startswith("v-") and password not in repr(events.items)
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
    """A 4 s lease kept alive by the maintenance loop past 6 s: renewed, same role, VALID UNTIL moved."""
    broker, view, events = make_broker(database, "agent-renew", default_ttl="4s", max_ttl="1m")
    postgres = database.postgres
    try:
        user, password = await credentials(view)
        first_deadline = valid_until(postgres, user)
        started = time.monotonic()
        await maintain_until(broker, lambda: time.monotonic() - started > 6.2, timeout=7)
        assert len(events.of("renewed")) >= 2, events.items
        assert events.of("rotated") == [] and events.of("failed") == []
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
    """Near max_ttl (8 s) the broker issues a new role, then revokes the old one after the overlap."""
    broker, view, events = make_broker(database, "agent-rotate", default_ttl="4s", max_ttl="8s")
    postgres = database.postgres
    try:
        old_user, old_password = await credentials(view)
        await maintain_until(
            broker,
            lambda: bool(events.of("rotated")) and bool(events.of("revoked")),
            timeout=10,
        )
        (rotated,) = events.of("rotated")
        assert rotated["key"] == list(KEYS)
        (revoked,) = events.of("revoked")
        assert revoked["lease"] == events.of("issued")[0]["lease"] != rotated["lease"]
        new_user, new_password = await credentials(view)
        assert new_user != old_user and new_password != old_password
        assert await login(postgres, new_user, new_password) == new_user
        assert postgres.wait_role_gone(old_user, timeout=2)
        assert broker.fetch_count == 2
    finally:
        await broker.close()
    assert not postgres.role_exists(new_user)
