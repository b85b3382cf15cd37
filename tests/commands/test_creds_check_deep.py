"""`scoped-mcp creds check --deep` issues a dynamic PostgreSQL credential, logs in, revokes it.

OpenBao's database engine and the throwaway cluster come from tests/postgres/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

from tests.commands.vault_support import TOKEN_ENV, assert_nowhere, creds_json, write_manifest
from tests.postgres.conftest import Database, Postgres, database, pg_bao, postgres

__all__ = ["database", "pg_bao", "postgres"]  # the fixtures, shared with tests/postgres


def test_deep_issues_logs_in_and_revokes_at_once(
    database: Database, postgres: Postgres, tmp_path: Path
) -> None:
    """--deep issues the credential once, logs in to PostgreSQL with it, revokes it (the role is
    gone afterwards) and prints lease facts, never the username or password."""
    path = database.add_role("creds-deep", default_ttl="5m", max_ttl="10m")
    token = database.token("creds-deep")
    manifest = write_manifest(
        tmp_path, database.bao.addr, keys={"API_TOKEN": f"vault-dynamic:{path}#password"}
    )
    before = set(postgres.issued_credentials())
    dsn = f"host=127.0.0.1 port={postgres.port} dbname=postgres"
    code, report, raw = creds_json(
        tmp_path, manifest, "--deep", "--deep-pg-dsn", dsn, **{TOKEN_ENV: token}
    )
    assert code == 0, raw
    (deep,) = report["deep"]
    assert (deep["source"], deep["keys"], deep["status"]) == (
        f"vault-dynamic:{path}",
        ["leak.API_TOKEN"],
        "ok",
    )
    assert deep["detail"] == "issued, logged in to PostgreSQL, revoked"
    facts = deep["facts"]
    assert (facts["login"], facts["revoked"], facts["renewable"]) == ("ok", True, True)
    assert facts["lease_ttl"] == 120  # the role grants 300 s; held to lease_ttl (default 120 s)
    assert facts["fields"] == ["password", "username"]
    issued = {u: p for u, p in postgres.issued_credentials().items() if u not in before}
    assert len(issued) == 1, "issued exactly once"
    ((username, password),) = issued.items()
    assert postgres.wait_role_gone(username)
    assert_nowhere(raw, username, password, token, database.bao.root_token)


def test_deep_without_a_dsn_proves_issue_and_revoke(
    database: Database, postgres: Postgres, tmp_path: Path
) -> None:
    """Without --deep-pg-dsn the credential is issued and revoked, and the login is skipped."""
    path = database.add_role("creds-deep-nodsn", default_ttl="20s", max_ttl="1m")
    token = database.token("creds-deep-nodsn")
    manifest = write_manifest(
        tmp_path, database.bao.addr, keys={"API_TOKEN": f"vault-dynamic:{path}#username"}
    )
    before = set(postgres.issued_credentials())
    code, report, raw = creds_json(tmp_path, manifest, "--deep", **{TOKEN_ENV: token})
    assert code == 2, raw  # the 20 s lease is shorter than a tool call may take
    (deep,) = report["deep"]
    assert deep["status"] == "ok"
    assert deep["facts"]["login"] == "skipped"
    assert "PostgreSQL login not tried" in deep["detail"]
    assert report["warnings"] == [
        f"vault-dynamic:{path}: the lease lasts 20s, shorter than a tool call may take (30s): "
        "raise the role's default_ttl"
    ]
    ((username, password),) = (
        (u, p) for u, p in postgres.issued_credentials().items() if u not in before
    )
    assert postgres.wait_role_gone(username)
    assert_nowhere(raw, username, password, token)


def test_deep_names_the_role_line_when_a_lease_cannot_be_held_short(
    database: Database, postgres: Postgres, tmp_path: Path
) -> None:
    """A token whose policy may issue and revoke but not renew gets the role's full 1 h lease:
    --deep warns that a crash leaves it usable that long and prints the fixing role line."""
    path = database.add_role("creds-long", default_ttl="1h", max_ttl="2h")
    rules = (
        f'path "{path}" {{ capabilities = ["read"] }}\n'
        f'path "sys/leases/revoke/{path}/*" {{ capabilities = ["update"] }}\n'
        'path "auth/token/lookup-self" { capabilities = ["read"] }\n'
        'path "sys/capabilities-self" { capabilities = ["update"] }\n'
    )
    admin = database.bao.admin
    admin.sys.create_or_update_policy(name="creds-long-no-renew", policy=rules)
    answer = admin.auth.token.create(
        policies=["creds-long-no-renew"], no_default_policy=True, ttl="10m"
    )
    token = str(answer["auth"]["client_token"])
    manifest = write_manifest(
        tmp_path, database.bao.addr, keys={"API_TOKEN": f"vault-dynamic:{path}#password"}
    )
    before = set(postgres.issued_credentials())
    _code, report, raw = creds_json(tmp_path, manifest, "--deep", **{TOKEN_ENV: token})
    (deep,) = report["deep"]
    assert deep["facts"]["lease_ttl"] == 3600
    assert any(
        "could not be held to lease_ttl (120s)" in w
        and "bao write database/roles/creds-long default_ttl=120s" in w
        for w in deep["facts"]["warnings"]
    ), deep["facts"]
    issued = {u: p for u, p in postgres.issued_credentials().items() if u not in before}
    ((username, password),) = issued.items()
    assert not postgres.role_exists(username), "revoked at once all the same"
    assert_nowhere(raw, username, password)
