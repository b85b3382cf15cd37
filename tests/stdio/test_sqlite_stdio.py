"""The sqlite module through the real server over stdio: tool registration, isolation, audit."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]


def manifest_data(db_dir: Path, mode: str) -> dict[str, Any]:
    return {
        "agent_type": "research",
        "modules": {"sqlite": {"mode": mode, "config": {"db_dir": str(db_dir)}}},
    }


def table_names(path: Path) -> list[str]:
    with sqlite3.connect(path.as_uri() + "?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        return [name for (name,) in rows]


async def test_read_mode_registers_read_tools_and_audits_a_refusal(
    write_manifest: Any, serve: Any, tmp_path: Path
) -> None:
    """Read mode registers only sqlite_query and sqlite_list_tables; a write through sqlite_query
    gets a short error, an audit record with outcome "denied", and changes nothing."""
    db_dir = tmp_path / "db"
    async with serve(write_manifest(manifest_data(db_dir, "read"))) as server:
        assert await server.tool_names() == ["sqlite_list_tables", "sqlite_query"]
        message = await server.error("sqlite_query", {"sql": "CREATE TABLE stolen (a)"})
        assert "read-only" in message
        assert len(message) < 200
        assert await server.call("sqlite_list_tables") == {"tables": [], "truncated": False}
        await server.error("sqlite_execute", {"sql": "CREATE TABLE stolen (a)"})
        records = [
            r
            for r in server.audit_records()
            if r.get("tool") == "sqlite_query" and r["event"] == "tool_call"
        ]
        assert records[0]["outcome"] == "denied"
        assert "read-only" in records[0]["error"]
    assert table_names(db_dir / "agent_agent-01.db") == []


async def test_write_mode_agents_have_separate_databases(
    write_manifest: Any, serve: Any, tmp_path: Path
) -> None:
    """Write mode registers all four tools, and two agents sharing db_dir never see each other's
    tables: each writes only its own agent_{agent_id}.db."""
    db_dir = tmp_path / "db"
    manifest = write_manifest(manifest_data(db_dir, "write"))
    async with (
        serve(manifest, agent_id="agent-a") as first,
        serve(manifest, agent_id="agent-b") as second,
    ):
        assert await first.tool_names() == [
            "sqlite_create_table",
            "sqlite_execute",
            "sqlite_list_tables",
            "sqlite_query",
        ]
        columns = [
            {"name": "id", "type": "INTEGER", "primary_key": True},
            {"name": "v", "type": "TEXT"},
        ]
        await first.call("sqlite_create_table", {"table": "notes", "columns": columns})
        inserted = await first.call(
            "sqlite_execute", {"sql": "INSERT INTO notes (v) VALUES (?)", "params": ["a's secret"]}
        )
        assert inserted == {"rows_affected": 1, "last_insert_rowid": 1}
        result = await first.call("sqlite_query", {"sql": "SELECT v FROM notes"})
        assert result["rows"] == [["a's secret"]]

        assert (await second.call("sqlite_list_tables"))["tables"] == []
        assert "no such table" in await second.error("sqlite_query", {"sql": "SELECT * FROM notes"})
        bad = await second.error(
            "sqlite_create_table",
            {"table": "x", "columns": [{"name": "a", "type": "TEXT); DROP TABLE notes; --"}]},
        )
        assert len(bad) < 300
        assert "DROP" not in bad
        schema = {t.name: t for t in await second.client.list_tools()}["sqlite_create_table"]
        column_type = schema.input_schema["properties"]["columns"]["items"]["properties"]["type"]
        assert column_type["enum"] == ["TEXT", "INTEGER", "REAL", "BLOB", "NUMERIC"]
        attach = await second.error(
            "sqlite_execute", {"sql": f"ATTACH '{db_dir / 'agent_agent-a.db'}' AS a"}
        )
        assert "ATTACH" in attach
        assert [
            r["outcome"]
            for r in second.audit_records()
            if r.get("tool") == "sqlite_execute" and r["event"] == "tool_call"
        ] == ["denied"]
    assert table_names(db_dir / "agent_agent-a.db") == ["notes"]
    assert table_names(db_dir / "agent_agent-b.db") == []
