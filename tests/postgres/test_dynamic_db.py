"""Dynamic PostgreSQL credentials from OpenBao's database engine, end to end."""

from __future__ import annotations

import psycopg
import pytest

from tests.postgres.conftest import VAULT_ADMIN, Database


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
