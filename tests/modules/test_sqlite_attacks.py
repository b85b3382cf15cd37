"""sqlite against hostile arguments, through the real call pipeline.

A bad argument gives the agent a short, specific refusal (never "internal error"), leaves an
audit record, and touches nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime_support import audit_records, refusal, runtime_for

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**300])
async def test_sqlite_integer_param_out_of_range_is_refused(tmp_path: Path, value: int) -> None:
    """An integer param SQLite cannot store (beyond 64 bits) is an invalid argument."""
    config = {"db_dir": str(tmp_path / "db")}
    async with runtime_for(tmp_path, "sqlite", config, {}, "write") as runtime:
        message = await refusal(runtime, "sqlite_query", {"sql": "SELECT ?", "params": [value]})
        assert "64-bit" in message
        await refusal(runtime, "sqlite_execute", {"sql": "SELECT ?", "params": [value]})
    outcomes = [r["outcome"] for r in audit_records(tmp_path, "sqlite_query")]
    assert outcomes == ["denied"]
