"""SqliteModule against real SQLite files: results, limits, and a hostile suite of refusals."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from scoped_mcp.errors import BackendError, InvalidArgument, ScopeViolation, ToolCallError
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules.sqlite import SqliteModule
from scoped_mcp.testing.harness import module_harness

pytestmark = pytest.mark.anyio

AGENT = AgentContext("agent-01", "research")
SIDE_FILES = ("-wal", "-shm", "-journal")


Maker = Callable[..., Awaitable[Any]]


@pytest.fixture
async def make_module(tmp_path: Path) -> AsyncIterator[Maker]:
    """Start sqlite modules through the kit's harness; each is the harness's scoped direct view."""
    async with contextlib.AsyncExitStack() as stack:
        count = 0

        async def make(agent: AgentContext = AGENT, **config: Any) -> Any:
            nonlocal count
            count += 1
            settings = {"db_dir": str(tmp_path / "db"), "timeout_ms": 2000, **config}
            harness = await stack.enter_async_context(
                module_harness(
                    tmp_path / "harness" / str(count),
                    "sqlite",
                    settings,
                    agent_id=agent.agent_id,
                    agent_type=agent.agent_type,
                    mode="write",
                )
            )
            return harness.direct

        yield make


@pytest.fixture
async def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_module: Maker) -> SqliteModule:
    """A module whose database holds table t (3 rows, one index) and view tv."""
    monkeypatch.chdir(tmp_path)  # a relative file name an attack creates would land here
    module = await make_module()
    await module.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    await module.execute("CREATE INDEX t_v ON t (v)")
    await module.execute("INSERT INTO t (v) VALUES ('a'), ('b'), ('c')")
    await module.execute("CREATE VIEW tv AS SELECT v FROM t")
    return module


def db_file(module: SqliteModule) -> Path:
    return Path(module.config.db_dir) / f"agent_{module.agent_ctx.agent_id}.db"


def snapshot(module: SqliteModule) -> dict[str, Any]:
    """Everything a refused call must leave alone: schema, rows, header fields, and the files."""
    root = Path(module.config.db_dir).parent
    files = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if not path.name.endswith(SIDE_FILES) and "home" not in path.parts
    )
    uri = db_file(module).as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        schema = conn.execute("SELECT type, name, sql FROM sqlite_schema ORDER BY name").fetchall()
        tables = [name for kind, name, _ in schema if kind == "table"]
        rows = {
            name: conn.execute(f'SELECT * FROM "{name}" ORDER BY 1').fetchall() for name in tables
        }
        header = [
            conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in (
                "user_version",
                "application_id",
                "journal_mode",
                "auto_vacuum",
                "page_size",
            )
        ]
    return {"files": files, "schema": schema, "rows": rows, "header": header}


async def refused(
    tool: Any,
    *args: Any,
    kind: type[ToolCallError] | tuple[type[ToolCallError], ...] = ToolCallError,
) -> str:
    """Call ``tool``, which must fail with ``kind``; return the short message the agent sees."""
    with pytest.raises(kind) as info:
        await tool(*args)
    message = info.value.message
    assert len(message) < 200, message
    return message


# -- start-up and isolation ----------------------------------------------------------------------


async def test_startup_creates_private_directory_and_file(
    tmp_path: Path, make_module: Maker
) -> None:
    """startup() makes db_dir 0700 and the agent's agent_{agent_id}.db 0600, in WAL mode."""
    module = await make_module()
    path = tmp_path / "db" / "agent_agent-01.db"
    assert stat.S_IMODE(os.stat(tmp_path / "db").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert snapshot(module)["header"][2] == "wal"


async def test_startup_tightens_an_existing_file_and_refuses_a_link(
    tmp_path: Path, make_module: Maker
) -> None:
    """An existing database file is made 0600; a symbolic link in its place stops start-up."""
    (tmp_path / "db").mkdir()
    existing = tmp_path / "db" / "agent_agent-01.db"
    existing.touch(mode=0o644)
    await make_module()
    assert stat.S_IMODE(os.stat(existing).st_mode) == 0o600
    (tmp_path / "elsewhere.db").touch()
    (tmp_path / "db" / "agent_agent-02.db").symlink_to(tmp_path / "elsewhere.db")
    with pytest.raises(Exception, match="cannot open the agent database"):
        await make_module(AgentContext("agent-02", "research"))


async def test_two_agents_get_separate_files(tmp_path: Path, make_module: Maker) -> None:
    """Agents with different ids sharing db_dir each see only their own database."""
    first = await make_module()
    second = await make_module(AgentContext("agent-02", "research"))
    await first.execute("CREATE TABLE secrets (v TEXT)")
    await first.execute("INSERT INTO secrets VALUES ('mine')")
    assert (await second.list_tables())["tables"] == []
    await refused(second.query, "SELECT * FROM secrets", kind=BackendError)
    assert sorted(p.name for p in (tmp_path / "db").glob("*.db")) == [
        "agent_agent-01.db",
        "agent_agent-02.db",
    ]


def test_importing_the_module_does_not_import_sqlglot() -> None:
    """sqlglot is imported only when a refusal is worded, never at module import (start-up cost)."""
    code = "import sys, scoped_mcp.modules.sqlite; assert 'sqlglot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- results -------------------------------------------------------------------------------------


async def test_query_returns_columns_rows_and_base64_blobs(db: SqliteModule) -> None:
    """query returns columns, rows, row_count and truncated; BLOBs come back as {"base64": ...}."""
    result = await db.query("SELECT id, v, x'00ff', NULL, 1.5 FROM t WHERE id = ?", [2])
    assert result == {
        "columns": ["id", "v", "x'00ff'", "NULL", "1.5"],
        "rows": [[2, "b", {"base64": "AP8="}, None, 1.5]],
        "row_count": 1,
        "truncated": False,
    }


async def test_params_are_bound_never_spliced(db: SqliteModule) -> None:
    """A parameter holding SQL is stored as text; it never runs."""
    hostile = "x'); DROP TABLE t; --"
    await db.execute("INSERT INTO t (v) VALUES (?)", [hostile])
    result = await db.query("SELECT v FROM t WHERE v = ?", [hostile])
    assert result["rows"] == [[hostile]]
    assert (await db.query("SELECT count(*) FROM t"))["rows"] == [[4]]


async def test_execute_reports_rows_affected_and_last_rowid(db: SqliteModule) -> None:
    """execute reports rows_affected (WITH ... INSERT too), last_insert_rowid, RETURNING rows."""
    assert (await db.execute("UPDATE t SET v = upper(v)"))["rows_affected"] == 3
    added = await db.execute("WITH n(x) AS (VALUES ('d'), ('e')) INSERT INTO t (v) SELECT x FROM n")
    assert added == {"rows_affected": 2, "last_insert_rowid": 5}
    returned = await db.execute("DELETE FROM t WHERE id > ? RETURNING id", [3])
    assert returned["rows_affected"] == 2
    assert returned["returning"]["rows"] == [[4], [5]]


async def test_list_tables_shows_tables_and_views_with_columns(db: SqliteModule) -> None:
    """list_tables names every table and view with its columns, and hides sqlite_ internals."""
    listing = await db.list_tables()
    assert listing["truncated"] is False
    assert [(t["name"], t["type"]) for t in listing["tables"]] == [("t", "table"), ("tv", "view")]
    assert listing["tables"][0]["columns"] == [
        {"name": "id", "type": "INTEGER", "not_null": False, "primary_key": True},
        {"name": "v", "type": "TEXT", "not_null": False, "primary_key": False},
    ]
    assert [c["name"] for c in listing["tables"][1]["columns"]] == ["v"]


async def test_read_only_pragmas_and_table_functions_work(db: SqliteModule) -> None:
    """Reporting PRAGMAs, pragma table functions and json_each are allowed in a query."""
    assert (await db.query("PRAGMA user_version"))["rows"] == [[0]]
    assert (await db.query("SELECT name FROM pragma_table_info('t')"))["rows"] == [["id"], ["v"]]
    assert (await db.query("SELECT value FROM json_each('[1,2]')"))["rows"] == [[1], [2]]
    assert (await db.query("PRAGMA integrity_check"))["rows"] == [["ok"]]


async def test_result_rows_are_capped(tmp_path: Path, make_module: Maker) -> None:
    """More rows than max_rows come back cut at max_rows with truncated=true."""
    module = await make_module(max_rows=10)
    sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 50) SELECT i FROM n"
    result = await module.query(sql)
    assert (result["row_count"], result["truncated"]) == (10, True)
    assert result["rows"][-1] == [10]
    exact = await module.query(sql.replace("LIMIT 50", "LIMIT 10"))
    assert (exact["row_count"], exact["truncated"]) == (10, False)


async def test_result_bytes_are_capped(tmp_path: Path, make_module: Maker) -> None:
    """Rows past max_result_bytes are dropped with truncated=true."""
    module = await make_module(max_result_bytes=10_000)
    sql = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 100) "
        "SELECT printf('%.1000c', 'x') FROM n"
    )
    result = await module.query(sql)
    assert result["truncated"] is True
    assert 5 <= result["row_count"] < 10


async def test_oversized_values_are_refused(db: SqliteModule) -> None:
    """No value may exceed max(max_result_bytes, 1 MiB): no memory bombs, in either tool."""
    before = snapshot(db)
    await refused(db.query, "SELECT zeroblob(2000000)", kind=InvalidArgument)
    await refused(
        db.execute, "INSERT INTO t (v) VALUES (randomblob(5000000))", kind=InvalidArgument
    )
    assert snapshot(db) == before


# -- the hostile suite ---------------------------------------------------------------------------

WRITES = [
    "UPDATE t SET v = 'x'",
    "DELETE FROM t",
    "INSERT INTO t (v) VALUES ('z')",
    "REPLACE INTO t (id, v) VALUES (1, 'q')",
    "WITH x AS (SELECT 1) INSERT INTO t (v) SELECT * FROM x",
    "WITH x AS (SELECT 1) UPDATE t SET v = 'w'",
    "WITH x AS (SELECT 1) DELETE FROM t",
    "INSERT INTO t (v) VALUES ('z') RETURNING id",
    "CREATE TABLE z (a)",
    "CREATE TEMP TABLE z (a)",
    "CREATE TEMP VIEW zv AS SELECT 1",
    "CREATE TEMP TRIGGER zt AFTER INSERT ON t BEGIN SELECT 1; END",
    "CREATE VIEW z AS SELECT 1",
    "CREATE INDEX z ON t (v)",
    "CREATE TRIGGER z AFTER INSERT ON t BEGIN DELETE FROM t; END",
    "CREATE VIRTUAL TABLE z USING fts5(a)",
    "DROP TABLE t",
    "DROP VIEW tv",
    "DROP INDEX t_v",
    "ALTER TABLE t ADD COLUMN w",
    "ALTER TABLE t RENAME TO u",
    "REINDEX",
    "REINDEX t_v",
    "ANALYZE",
    "BEGIN",
    "COMMIT",
    "SAVEPOINT s",
    "UPDATE sqlite_master SET sql = 'x'",
]


@pytest.mark.parametrize("sql", WRITES)
async def test_query_refuses_every_write(db: SqliteModule, sql: str) -> None:
    """query refuses any statement that writes, including CTE writes and temp objects."""
    before = snapshot(db)
    message = await refused(db.query, sql)
    assert "not allowed" in message or "may not be modified" in message
    assert snapshot(db) == before


async def test_read_only_refusal_names_the_statement(db: SqliteModule) -> None:
    """The refusal says which statement kind was refused and where to send it instead."""
    message = await refused(db.query, "WITH x AS (SELECT 1) INSERT INTO t (v) SELECT * FROM x")
    assert (
        message == "query is read-only: INSERT is not allowed; use the execute tool to change data"
    )


PRAGMA_WRITES = [
    "PRAGMA journal_mode = DELETE",
    "PRAGMA journal_mode = OFF",
    "PRAGMA writable_schema = ON",
    "PRAGMA writable_schema = RESET",
    "PRAGMA user_version = 7",
    "PRAGMA main.user_version = 7",
    "PRAGMA application_id = 1",
    "PRAGMA schema_version = 1",
    "PRAGMA auto_vacuum = FULL",
    "PRAGMA page_size = 512",
    "PRAGMA max_page_count = 1",
    "PRAGMA locking_mode = EXCLUSIVE",
    "PRAGMA synchronous = OFF",
    "PRAGMA secure_delete = OFF",
    "PRAGMA cache_size = 1",
    "PRAGMA mmap_size = 1000000",
    "PRAGMA query_only = 0",
    "PRAGMA trusted_schema = ON",
    "PRAGMA foreign_keys = ON",
    "PRAGMA recursive_triggers = ON",
    "PRAGMA ignore_check_constraints = ON",
    "PRAGMA legacy_alter_table = ON",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA temp_store_directory = '.'",
    "PRAGMA wal_autocheckpoint = 1",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "PRAGMA wal_checkpoint",
    "PRAGMA optimize",
    "PRAGMA incremental_vacuum",
    "PRAGMA shrink_memory",
    "PRAGMA database_list",
    "SELECT * FROM pragma_optimize",
]

EVERY_MODE = [
    "SELECT 1; DROP TABLE t",
    "SELECT 1; SELECT 2",
    "SELECT 1;; ",
    "ATTACH ':memory:' AS m",
    "ATTACH 'other.db' AS o",
    "ATTACH 'file:other.db?mode=rwc' AS o",
    "DETACH main",
    "DETACH temp",
    "SELECT load_extension('libevil')",
    "SELECT load_extension('libevil', 'entry')",
    "SELECT fts3_tokenizer('simple')",
    "SELECT fts3_tokenizer('simple', x'4141414141414141')",
    "VACUUM",
    "VACUUM INTO 'copy.db'",
    "VACUUM INTO 'file:copy.db'",
    "VACUUM main INTO 'copy.db'",
    *PRAGMA_WRITES,
]


@pytest.mark.parametrize("tool", ["query", "execute"])
@pytest.mark.parametrize("sql", EVERY_MODE)
async def test_refused_in_every_mode(db: SqliteModule, tool: str, sql: str) -> None:
    """Multi-statement strings, ATTACH/DETACH, extensions, VACUUM (INTO) and PRAGMA writes are
    refused by both tools, and no file appears anywhere."""
    before = snapshot(db)
    await refused(getattr(db, tool), sql, kind=(ScopeViolation, InvalidArgument))
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "sql",
    [
        "BEGIN",
        "BEGIN IMMEDIATE",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT s",
        "RELEASE s",
        "CREATE VIRTUAL TABLE z USING dbstat",
        "CREATE VIRTUAL TABLE z USING fts3(a, tokenize=evil)",
    ],
)
async def test_execute_refuses_transactions_and_unlisted_virtual_tables(
    db: SqliteModule, sql: str
) -> None:
    """Each execute is its own transaction, and only fts4/fts5/rtree virtual tables may be made."""
    before = snapshot(db)
    await refused(db.execute, sql, kind=ScopeViolation)
    assert snapshot(db) == before


async def test_denied_functions_stay_denied_inside_views(db: SqliteModule) -> None:
    """A view cannot smuggle a denied function past the authorizer into a later query."""
    await db.execute("CREATE VIEW evil AS SELECT load_extension('libevil') AS x")
    for tool in (db.query, db.execute):
        message = await refused(tool, "SELECT * FROM evil", kind=ScopeViolation)
        assert "load_extension" in message


async def test_pragma_table_function_cannot_set_a_value(db: SqliteModule) -> None:
    """A pragma table function given a value (pragma_user_version(5)) sets nothing."""
    before = snapshot(db)
    for tool in (db.query, db.execute):
        await refused(tool, "SELECT * FROM pragma_user_version(5)")
    assert snapshot(db) == before


async def test_attach_and_vacuum_into_create_no_file(db: SqliteModule, tmp_path: Path) -> None:
    """ATTACH and VACUUM INTO with absolute paths are refused and create no file."""
    target = tmp_path / "stolen.db"
    for sql in (f"ATTACH '{target}' AS s", f"VACUUM INTO '{target}'"):
        message = await refused(db.execute, sql, kind=ScopeViolation)
        assert "ATTACH and VACUUM are not allowed" in message
    assert not target.exists()


async def test_recursive_cte_loop_stops_at_the_time_limit(
    tmp_path: Path, make_module: Maker
) -> None:
    """An endless WITH RECURSIVE is interrupted at timeout_ms and the database stays usable."""
    module = await make_module(timeout_ms=300)
    sql = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"
    started = time.monotonic()
    message = await refused(module.query, sql, kind=BackendError)
    assert time.monotonic() - started < 3
    assert "300 ms" in message
    await refused(module.execute, f"CREATE TABLE z AS {sql}", kind=BackendError)
    assert (await module.query("SELECT 1"))["rows"] == [[1]]
    assert (await module.list_tables())["tables"] == []


async def test_huge_sql_is_refused_before_sqlite_sees_it(
    tmp_path: Path, make_module: Maker
) -> None:
    """SQL longer than max_sql_chars is refused with a short message that does not echo it."""
    module = await make_module(max_sql_chars=1000)
    message = await refused(module.query, "SELECT '" + "x" * 2000 + "'", kind=InvalidArgument)
    assert "1000-character limit" in message
    assert "xxxx" not in message


async def test_sqlite_errors_are_short_and_do_not_echo_sql(db: SqliteModule) -> None:
    """A failing statement's error is short and never contains the (long) SQL text."""
    message = await refused(db.query, "SELECT * FROM nope WHERE v = '" + "y" * 5000 + "'")
    assert message == "sqlite: no such table: nope"
    message = await refused(db.query, "SELEC '" + "y" * 5000 + "'", kind=BackendError)
    assert "syntax error" in message


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        (123, None),
        (None, None),
        ("", None),
        ("   ", None),
        ("SELECT ?", "abc"),
        ("SELECT ?", {"a": 1}),
        ("SELECT ?", [{"a": 1}]),
        ("SELECT ?", [[1]]),
        ("SELECT ?", [b"raw"]),
        ("SELECT ?", [1, 2]),
        ("SELECT ?, ?", [1]),
        ("SELECT 1", list(range(1001))),
    ],
)
async def test_wrong_argument_types_are_refused(db: SqliteModule, sql: Any, params: Any) -> None:
    """Non-string SQL, non-list params, unsupported param types and wrong counts are refused."""
    await refused(db.query, sql, params, kind=InvalidArgument)


async def test_concurrent_calls_are_safe(db: SqliteModule) -> None:
    """Many concurrent writes and reads on one module all succeed and none is lost."""

    async def write(n: int) -> None:
        await db.execute("INSERT INTO t (v) VALUES (?)", [f"w{n}"])
        await db.query("SELECT count(*) FROM t")

    async with anyio.create_task_group() as group:
        for n in range(30):
            group.start_soon(write, n)
    assert (await db.query("SELECT count(*) FROM t WHERE v LIKE 'w%'"))["rows"] == [[30]]


# -- create_table ------------------------------------------------------------------------------


async def test_create_table_builds_typed_columns(db: SqliteModule) -> None:
    """create_table builds the table from allowlisted types and modifiers, composite keys too."""
    result = await db.create_table(
        "pairs",
        [
            {"name": "a", "type": "INTEGER", "primary_key": True},
            {"name": "b", "type": "TEXT", "primary_key": True, "not_null": True},
            {"name": "c", "type": "BLOB"},
        ],
    )
    assert result == {"table": "pairs", "columns": ["a", "b", "c"]}
    (sql,) = (await db.query("SELECT sql FROM sqlite_schema WHERE name = 'pairs'"))["rows"][0]
    assert (
        sql
        == 'CREATE TABLE "pairs" ("a" INTEGER, "b" TEXT NOT NULL, "c" BLOB, PRIMARY KEY ("a", "b"))'
    )
    await refused(db.create_table, "pairs", [{"name": "a", "type": "TEXT"}], kind=BackendError)
    await db.create_table("pairs", [{"name": "a", "type": "TEXT"}], True)


@pytest.mark.parametrize(
    "table",
    [
        "t; DROP TABLE t",
        't"',
        '"t"',
        "t'",
        "tä",
        "t\n",
        "",
        "1t",
        "a b",
        "sqlite_x",
        "x" * 65,
        "t--",
    ],
)
async def test_create_table_refuses_bad_table_names(db: SqliteModule, table: str) -> None:
    """Table names outside [A-Za-z_][A-Za-z0-9_]{0,63}, or reserved sqlite_ names, are refused."""
    before = snapshot(db)
    await refused(db.create_table, table, [{"name": "a", "type": "TEXT"}], kind=InvalidArgument)
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "columns",
    [
        [],
        [{"name": 'a" TEXT); DROP TABLE t; --', "type": "TEXT"}],
        [{"name": "a", "type": "TEXT); DROP TABLE t; --"}],
        [{"name": "a", "type": "text"}],
        [{"name": "a", "type": "VARCHAR(10)"}],
        [{"name": "a", "type": "TEXT", "default": "x"}],
        [{"name": "a", "type": "TEXT", "check": "1"}],
        [{"name": "a", "type": "TEXT"}, {"name": "A", "type": "TEXT"}],
        [{"name": "ä", "type": "TEXT"}],
        [{"name": "a"}],
        ["a TEXT"],
        [{"name": f"c{i}", "type": "TEXT"} for i in range(201)],
    ],
)
async def test_create_table_refuses_bad_columns(db: SqliteModule, columns: list[Any]) -> None:
    """Column names, types and modifiers come only from the allowlist; raw SQL never gets in."""
    before = snapshot(db)
    await refused(db.create_table, "fresh", columns, kind=InvalidArgument)
    assert snapshot(db) == before
