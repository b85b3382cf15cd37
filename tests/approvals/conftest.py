"""Fixtures of the approvals tests: Synapse here, PostgreSQL and OpenBao from tests/postgres."""

from tests.approvals.synapse import synapse
from tests.postgres.conftest import database, pg_bao, postgres

__all__ = ["database", "pg_bao", "postgres", "synapse"]
