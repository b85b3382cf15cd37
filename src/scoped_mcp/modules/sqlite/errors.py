"""The one place sqlite3 errors become ours, worded with sqlglot (imported only on refusal)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from scoped_mcp.errors import BackendError, InvalidArgument, ScopeViolation, ToolCallError
from scoped_mcp.modules.sqlite.policy import NO_ATTACH, Guard, clip


def _statement_kinds(sql: str) -> list[str]:
    """The kind of each statement in ``sql`` (``SELECT``, ``INSERT``, ...), best effort."""
    import sqlglot  # lazy: start-up cost matters and only refusals need it

    try:
        tokens = sqlglot.tokenize(sql, read="sqlite")
    except Exception:  # noqa: BLE001  (wording only: an untokenizable string has no kind)
        return []
    statements: list[list[Any]] = [[]]
    for token in tokens:
        if token.token_type.name == "SEMICOLON":
            statements.append([])
        else:
            statements[-1].append(token)
    return [_kind(statement) for statement in statements if statement]


def _kind(tokens: Sequence[Any]) -> str:
    """The first keyword of a statement; for ``WITH``, of the statement the CTEs feed."""
    first = str(tokens[0].text).split()[0].upper()
    if first != "WITH":
        return first
    depth = 0
    for token in tokens[1:]:
        text = str(token.text).upper()
        depth += text == "("
        depth -= text == ")"
        if depth == 0 and text in ("SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "VALUES"):
            return text
    return "WITH"


def _read_only_message(sql: str) -> str:
    kinds = _statement_kinds(sql)
    kind = next((k for k in kinds if k not in ("SELECT", "VALUES", "WITH")), "this statement")
    return f"query is read-only: {kind} is not allowed; use the execute tool to change data"


def _one_statement_message(sql: str) -> str:
    count = len(_statement_kinds(sql))
    found = f" (found {count})" if count > 1 else ""
    return f"one statement per call{found}; send each statement in its own call"


def map_error(exc: sqlite3.Error, guard: Guard, sql: str, value_limit: int) -> ToolCallError:
    """Turn a sqlite3 failure into a short error for the agent; never echoes the SQL."""
    return _refusal(str(exc), guard, sql) or _failure(exc, guard, value_limit)


def _refusal(message: str, guard: Guard, sql: str) -> ToolCallError | None:
    """The policy refusals (outcome "denied"), or None when SQLite failed for another reason."""
    if guard.denied:
        return ScopeViolation(guard.denied)
    if guard.write_attempt or "readonly database" in message:
        return ScopeViolation(_read_only_message(sql))
    if message.startswith("unsafe use of"):  # trusted_schema=OFF refused a function in a view
        return ScopeViolation(clip(message, 80))
    if "too many attached databases" in message:
        return ScopeViolation(NO_ATTACH)
    if "one statement at a time" in message:
        return InvalidArgument(_one_statement_message(sql))
    return None


def _failure(exc: sqlite3.Error, guard: Guard, value_limit: int) -> ToolCallError:
    message = str(exc)
    if guard.timed_out or message == "interrupted":
        return BackendError(f"stopped: the statement ran past the {guard.timeout_ms} ms limit")
    if isinstance(exc, sqlite3.DataError) or "too big" in message:
        return InvalidArgument(f"a value or row is larger than the {value_limit}-byte limit")
    if isinstance(exc, sqlite3.ProgrammingError):
        return InvalidArgument(clip(message))
    if "locked" in message or "busy" in message:
        return BackendError("the database is busy; try again")
    return BackendError(f"sqlite: {clip(message)}")
