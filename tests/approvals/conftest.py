"""Fixtures of the approvals tests: Synapse here, PostgreSQL and OpenBao from tests/postgres."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.approvals.support import runtime_dir
from tests.approvals.synapse import synapse
from tests.postgres.conftest import database, pg_bao, postgres

__all__ = ["database", "pg_bao", "postgres", "synapse"]


@pytest.fixture(autouse=True)
def _remove_runtime_dir(tmp_path: Path) -> Iterator[None]:
    """Each test's private runtime directory (under /tmp) goes when the test ends."""
    yield
    shutil.rmtree(runtime_dir(tmp_path), ignore_errors=True)
