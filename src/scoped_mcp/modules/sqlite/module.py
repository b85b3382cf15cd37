"""SQLite module: one database file per agent, ``{db_dir}/agent_{agent_id}.db``, and no other file.

SQLite itself enforces what a call may do; no SQL is ever judged by string matching:

* ``query`` and ``list_tables`` open the file read-only (``mode=ro`` URI) with a read authorizer
  that allows only SELECT, READ, RECURSIVE, functions outside a denylist, and read-only PRAGMAs.
  Python's ``execute`` refuses a second statement in the string: nothing rides along a SELECT.
* ``execute`` and ``create_table`` open it read-write with a write authorizer that refuses ATTACH,
  DETACH, BEGIN/COMMIT/SAVEPOINT, PRAGMAs outside the read-only set, dangerous functions and virtual
  table modules outside an allowlist. Each call is one statement in autocommit: atomic on its own.
* Every connection has ``SQLITE_LIMIT_ATTACHED`` 0 (which also stops ``VACUUM`` and ``VACUUM INTO``,
  both of which attach a file), ``trusted_schema=OFF``, extension loading never enabled, bounded
  value/SQL/parameter sizes, a progress-handler deadline of ``timeout_ms`` and capped result rows.

Connections: one per call, opened and closed in the worker thread that runs the call. Opening a
local SQLite file costs tens of microseconds, which buys a fresh authorizer, deadline and limits per
call, no state (temp tables, pragmas, an open transaction) carried from one call to the next, and no
connection shared between threads, so concurrent calls are safe without a lock of our own; SQLite's
file locking (WAL journal, busy timeout) orders concurrent writers.

sqlglot is used only after SQLite has refused a statement, to word the error (which statement kind,
how many statements); it is imported lazily there, never at start-up.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import sqlite3
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import (
    ConfigError,
    InvalidArgument,
)
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import ManifestPath
from scoped_mcp.modules._base import ToolModule, tool
from scoped_mcp.modules.sqlite.errors import map_error
from scoped_mcp.modules.sqlite.policy import Guard
from scoped_mcp.scoping import PerAgentFile

T = TypeVar("T")
Param = str | int | float | None
ColumnType = Literal["TEXT", "INTEGER", "REAL", "BLOB", "NUMERIC"]

IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_PARAMS: Final = 1000
SQLITE_INT: Final = range(-(2**63), 2**63)
MAX_COLUMNS: Final = 200
MIN_VALUE_BYTES: Final = 1024 * 1024
_PROGRESS_STEPS: Final = 1000
_FETCH_BATCH: Final = 100
_MAX_MESSAGE: Final = 200


class SqliteConfig(BaseModel):
    """``modules.sqlite.config``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    db_dir: ManifestPath = Field(description="Directory holding agent_{agent_id}.db files.")
    max_rows: int = Field(default=1000, gt=0, le=1_000_000, description="Rows a result keeps.")
    max_result_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        le=1024**3,
        description="Bytes a result keeps; also caps one value or row (at least 1 MiB).",
    )
    timeout_ms: int = Field(default=5000, gt=0, le=600_000, description="Time limit per call.")
    max_sql_chars: int = Field(default=100_000, gt=0, le=10_000_000, description="Longest SQL.")


class Column(BaseModel):
    """One column of a table to create."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Letters, digits and _, starting with a letter or _.")
    type: ColumnType = Field(description="TEXT, INTEGER, REAL, BLOB or NUMERIC.")
    primary_key: bool = Field(
        default=False, description="Part of the primary key; several make a composite key."
    )
    not_null: bool = Field(default=False, description="Refuse NULL in this column.")


# -- results -------------------------------------------------------------------------------------


def _value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    return value


def _size(value: Any) -> int:
    """Roughly the JSON size of one result value, so the byte cap tracks what the agent receives."""
    if isinstance(value, str):
        return len(value.encode("utf-8", errors="surrogatepass")) + 2
    if isinstance(value, dict):
        return len(value["base64"]) + 14
    return len(repr(value))


def _collect(cursor: sqlite3.Cursor, *, max_rows: int, max_bytes: int) -> dict[str, Any]:
    """Fetch rows in batches until the result ends or a row or byte cap is reached."""
    columns = [column[0] for column in cursor.description or ()]
    rows: list[list[Any]] = []
    size = sum(len(name) + 3 for name in columns)
    truncated = False
    while not truncated and (batch := cursor.fetchmany(_FETCH_BATCH)):
        for raw in batch:
            row = [_value(value) for value in raw]
            size += sum(_size(value) + 1 for value in row) + 2
            if len(rows) >= max_rows or size > max_bytes:
                truncated = True
                break
            rows.append(row)
    return {"columns": columns, "rows": rows, "row_count": len(rows), "truncated": truncated}


def _params(params: Sequence[Param] | None) -> list[Param]:
    if params is None:
        return []
    if not isinstance(params, list | tuple):
        raise InvalidArgument("params must be a list")
    if len(params) > MAX_PARAMS:
        raise InvalidArgument(f"at most {MAX_PARAMS} params")
    for index, value in enumerate(params):
        if value is not None and not isinstance(value, str | int | float):
            raise InvalidArgument(f"params[{index}] must be a string, number or null")
        if isinstance(value, int) and value not in SQLITE_INT:
            raise InvalidArgument(f"params[{index}] is beyond SQLite's 64-bit integer range")
    return list(params)


def _quote(identifier: str, what: str) -> str:
    """``identifier`` in double quotes, after checking it against ``IDENTIFIER``."""
    if not isinstance(identifier, str) or not IDENTIFIER.fullmatch(identifier):
        raise InvalidArgument(
            f"{what} must be 1-64 letters, digits or _, starting with a letter or _"
        )
    if identifier.lower().startswith("sqlite_"):
        raise InvalidArgument(f"{what} must not start with 'sqlite_' (reserved by SQLite)")
    return f'"{identifier}"'


def _table_sql(table: str, columns: Sequence[Column], *, if_not_exists: bool) -> str:
    """CREATE TABLE text built only from checked identifiers and allowlisted words."""
    if not columns:
        raise InvalidArgument("a table needs at least one column")
    if len(columns) > MAX_COLUMNS:
        raise InvalidArgument(f"at most {MAX_COLUMNS} columns")
    names = [column.name.lower() for column in columns]
    if len(set(names)) != len(names):
        raise InvalidArgument("column names must be unique (case-insensitively)")
    keys = [column for column in columns if column.primary_key]
    parts = []
    for column in columns:
        part = f"{_quote(column.name, 'column name')} {column.type}"
        if column.primary_key and len(keys) == 1:
            part += " PRIMARY KEY"
        if column.not_null:
            part += " NOT NULL"
        parts.append(part)
    if len(keys) > 1:
        parts.append(f"PRIMARY KEY ({', '.join(_quote(c.name, 'column name') for c in keys)})")
    exists = "IF NOT EXISTS " if if_not_exists else ""
    return f"CREATE TABLE {exists}{_quote(table, 'table name')} ({', '.join(parts)})"


class SqliteModule(ToolModule):
    """Query and change the agent's own SQLite database."""

    name = "sqlite"
    scoping = PerAgentFile("agent_{agent_id}.db")
    config_model = SqliteConfig
    config: SqliteConfig

    def __init__(
        self, agent_ctx: AgentContext, credentials: CredentialView, config: SqliteConfig
    ) -> None:
        super().__init__(agent_ctx, credentials, config)
        self._dir = Path(config.db_dir).absolute()
        self._path = Path(self.scoping.apply(str(self._dir), agent_ctx))
        self._uri = self._path.as_uri()

    async def startup(self) -> None:
        """Create the database directory (0700) and the agent's database file (0600, WAL)."""
        await anyio.to_thread.run_sync(self._prepare_file)

    def _prepare_file(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self._path, flags, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot open the agent database {self._path}: {exc.strerror}",
                fix="db_dir must be a writable directory; the database file must not be a link",
            ) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigError(f"{self._path} is not a regular file")
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        with contextlib.closing(sqlite3.connect(self._uri + "?mode=rw", uri=True)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")

    # -- running one call ----------------------------------------------------------------------

    def _connect(self, guard: Guard) -> sqlite3.Connection:
        """A fresh connection with every limit and the call's guard installed."""
        mode = "ro" if guard.read_only else "rw"
        conn = sqlite3.connect(
            f"{self._uri}?mode={mode}",
            uri=True,
            timeout=self.config.timeout_ms / 1000,
            isolation_level=None,
            cached_statements=0,
        )
        try:
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self._value_limit)
            conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, self.config.max_sql_chars * 4)
            conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, MAX_PARAMS)
            conn.execute("PRAGMA trusted_schema=OFF")
            conn.set_authorizer(guard.authorize)
            conn.set_progress_handler(guard.progress, _PROGRESS_STEPS)
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def _value_limit(self) -> int:
        return max(self.config.max_result_bytes, MIN_VALUE_BYTES)

    def _call(self, work: Callable[[sqlite3.Connection], T], *, read_only: bool, sql: str) -> T:
        """Run ``work`` on a fresh connection in this (worker) thread; map sqlite3 errors."""
        guard = Guard(read_only=read_only, timeout_ms=self.config.timeout_ms)
        try:
            with contextlib.closing(self._connect(guard)) as conn:
                return work(conn)
        except sqlite3.Error as exc:
            raise map_error(exc, guard, sql, self._value_limit) from None

    async def _run(
        self, work: Callable[[sqlite3.Connection], T], *, read_only: bool, sql: str
    ) -> T:
        def call() -> T:
            return self._call(work, read_only=read_only, sql=sql)

        return await anyio.to_thread.run_sync(call)

    def _check_sql(self, sql: str) -> str:
        if not isinstance(sql, str) or not sql.strip():
            raise InvalidArgument("sql must be a non-empty string")
        if len(sql) > self.config.max_sql_chars:
            raise InvalidArgument(
                f"sql is longer than the {self.config.max_sql_chars}-character limit"
            )
        return sql

    def _results(self, cursor: sqlite3.Cursor) -> dict[str, Any]:
        limits = self.config
        return _collect(cursor, max_rows=limits.max_rows, max_bytes=limits.max_result_bytes)

    # -- tools ---------------------------------------------------------------------------------

    @tool(mode="read")
    async def query(
        self,
        sql: Annotated[
            str,
            Field(
                description="One read-only statement (SELECT, WITH ... SELECT, a read-only "
                'PRAGMA), e.g. "SELECT id, body FROM notes WHERE id = ?". One statement per '
                "call; at most max_sql_chars (100,000 unless the operator set another)."
            ),
        ],
        params: Annotated[
            list[Param] | None,
            Field(
                description="Values for the ? placeholders, in order: strings, numbers or "
                f"null, at most {MAX_PARAMS}, e.g. [42]."
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Run one read-only SQL statement (SELECT, WITH, read-only PRAGMA) on your database.

        Use ? placeholders with params. Returns columns, rows (BLOBs as {"base64": ...}),
        row_count and truncated (true when the row or size limit cut the result short).
        """
        sql, values = self._check_sql(sql), _params(params)
        return await self._run(
            lambda conn: self._results(conn.execute(sql, values)), read_only=True, sql=sql
        )

    @tool(mode="read")
    async def list_tables(self) -> dict[str, Any]:
        """List the tables and views in your database with their columns."""
        return await self._run(self._list_tables, read_only=True, sql="")

    def _list_tables(self, conn: sqlite3.Connection) -> dict[str, Any]:
        found = conn.execute(
            "SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY name LIMIT ?",
            (self.config.max_rows + 1,),
        ).fetchall()
        tables = []
        for name, kind in found[: self.config.max_rows]:
            columns = conn.execute(
                'SELECT name, type, "notnull", pk FROM pragma_table_info(?)', (name,)
            ).fetchall()
            tables.append(
                {
                    "name": name,
                    "type": kind,
                    "columns": [
                        {"name": c, "type": t, "not_null": bool(nn), "primary_key": bool(pk)}
                        for c, t, nn, pk in columns
                    ],
                }
            )
        return {"tables": tables, "truncated": len(found) > self.config.max_rows}

    @tool(mode="write")
    async def execute(
        self,
        sql: Annotated[
            str,
            Field(
                description="One statement that changes your database, e.g. "
                '"INSERT INTO notes (body) VALUES (?)" (RETURNING allowed). No ATTACH, '
                "BEGIN/COMMIT or PRAGMA but read-only ones; at most max_sql_chars (100,000 unless "
                "the operator set another)."
            ),
        ],
        params: Annotated[
            list[Param] | None,
            Field(
                description="Values for the ? placeholders, in order: strings, numbers or "
                f'null, at most {MAX_PARAMS}, e.g. ["hello"].'
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Run one SQL statement that changes your database (INSERT, UPDATE, DELETE, CREATE, ...).

        Use ? placeholders with params. Each call commits on its own. Returns rows_affected and
        last_insert_rowid, plus the rows of a RETURNING clause.
        """
        sql, values = self._check_sql(sql), _params(params)
        return await self._run(
            lambda conn: self._execute(conn, sql, values), read_only=False, sql=sql
        )

    def _execute(self, conn: sqlite3.Connection, sql: str, values: list[Param]) -> dict[str, Any]:
        cursor = conn.execute(sql, values)
        returned = self._results(cursor) if cursor.description else None
        cursor.fetchall()  # finish the statement so its changes are counted and committed
        # changes() rather than rowcount: Python counts rows only for statements that start with
        # INSERT/UPDATE/DELETE/REPLACE, so a WITH ... INSERT would report nothing.
        (changed,) = conn.execute("SELECT changes()").fetchone()
        result: dict[str, Any] = {
            "rows_affected": changed,
            "last_insert_rowid": cursor.lastrowid,
        }
        if returned is not None:
            result["returning"] = returned
        return result

    @tool(mode="write")
    async def create_table(
        self,
        table: Annotated[
            str,
            Field(
                description="Name of the new table: 1-64 letters, digits or _, starting with a "
                'letter or _, not starting with "sqlite_", e.g. "notes".'
            ),
        ],
        columns: Annotated[
            list[Column],
            Field(
                description=f"The columns, 1 to {MAX_COLUMNS}, e.g. "
                '[{"name": "id", "type": "INTEGER", "primary_key": true}, '
                '{"name": "body", "type": "TEXT", "not_null": true}].'
            ),
        ],
        if_not_exists: Annotated[
            bool,
            Field(description="true: succeed without change when the table already exists."),
        ] = False,
    ) -> dict[str, Any]:
        """Create a table from a list of columns, each {name, type, primary_key?, not_null?}.

        type is one of TEXT, INTEGER, REAL, BLOB, NUMERIC. Several primary_key columns make a
        composite key. Names are letters, digits and _ (starting with a letter or _).
        """
        try:
            checked = [Column.model_validate(column) for column in columns]
        except ValidationError:
            raise InvalidArgument(
                "each column is {name, type, primary_key?, not_null?} with type one of "
                "TEXT, INTEGER, REAL, BLOB, NUMERIC"
            ) from None
        sql = _table_sql(table, checked, if_not_exists=if_not_exists)
        await self._run(lambda conn: conn.execute(sql), read_only=False, sql=sql)
        return {"table": table, "columns": [column.name for column in checked]}
