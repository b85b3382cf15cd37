"""The SQLite authorizer policy: what a statement may do, decided by SQLite's own callbacks.

``Guard`` is installed on every connection (``set_authorizer``, ``set_progress_handler``) and
records why it refused, so the error the agent sees can say so.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Final

MAX_MESSAGE: Final = 200

DENIED_FUNCTIONS: Final = frozenset(
    {"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit", "fsdir"}
)
"""Functions refused in every mode: they load code, leak pointers or touch other files."""

READ_PRAGMAS: Final = frozenset(
    {
        "application_id", "collation_list", "data_version", "encoding", "foreign_keys",
        "freelist_count", "function_list", "journal_mode", "module_list", "page_count",
        "page_size", "pragma_list", "schema_version", "table_list", "user_version",
    }
)  # fmt: skip
"""PRAGMAs allowed without an argument: each reports a setting (an argument would change it)."""

QUERY_PRAGMAS: Final = frozenset(
    {
        "foreign_key_check", "foreign_key_list", "index_info", "index_list", "index_xinfo",
        "integrity_check", "quick_check", "table_info", "table_xinfo",
    }
)  # fmt: skip
"""PRAGMAs allowed with or without an argument: the argument names what to report on."""

VTABLE_MODULES: Final = frozenset({"fts4", "fts5", "rtree"})
"""Virtual table modules ``execute`` may create."""

NO_ATTACH: Final = "ATTACH and VACUUM are not allowed: the agent's database is its only file"
_ALWAYS_DENIED: Final = {
    sqlite3.SQLITE_ATTACH: NO_ATTACH,
    sqlite3.SQLITE_DETACH: "DETACH is not allowed",
}
_NO_TRANSACTION: Final = (
    "each call is its own transaction; BEGIN, COMMIT, SAVEPOINT are not allowed"
)
_WRITE_DENIED: Final = {
    sqlite3.SQLITE_TRANSACTION: _NO_TRANSACTION,
    sqlite3.SQLITE_SAVEPOINT: _NO_TRANSACTION,
}
_READ_ACTIONS: Final = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
)


class Guard:
    """The per-call policy SQLite consults: authorizer, deadline, and why it last refused."""

    def __init__(self, *, read_only: bool, timeout_ms: int) -> None:
        self.read_only = read_only
        self.timeout_ms = timeout_ms
        self.deadline = time.monotonic() + timeout_ms / 1000
        self.denied: str | None = None
        self.write_attempt = False
        self.timed_out = False

    def progress(self) -> int:
        """Progress handler: non-zero interrupts the statement once the deadline has passed."""
        if time.monotonic() > self.deadline:
            self.timed_out = True
            return 1
        return 0

    def authorize(
        self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None
    ) -> int:
        """Authorizer callback: SQLITE_OK or SQLITE_DENY, recording the reason for a denial."""
        reason = self._check(action, arg1, arg2)
        if reason is None:
            return sqlite3.SQLITE_OK
        if self.denied is None and not self.write_attempt:
            if reason:
                self.denied = reason
            else:
                self.write_attempt = True
        return sqlite3.SQLITE_DENY

    def _check(self, action: int, arg1: str | None, arg2: str | None) -> str | None:
        """None to allow; a reason to deny; "" for a write refused by a read-only call."""
        if action in _READ_ACTIONS:
            return None
        if action == sqlite3.SQLITE_FUNCTION:
            return _check_function((arg2 or "").lower())
        if action == sqlite3.SQLITE_PRAGMA:
            return _check_pragma((arg1 or "").lower(), arg2)
        if action in _ALWAYS_DENIED:
            return _ALWAYS_DENIED[action]
        if self.read_only:
            return None if _is_schema_reload(action, arg1) else ""
        return _check_write(action, arg2)


def _is_schema_reload(action: int, table: str | None) -> bool:
    """True for the schema-table UPDATE SQLite < 3.41 reports when a SELECT opens a virtual table.

    It shows up for ``json_each``, ``pragma_table_info``, ``sqlite_schema`` and the like.
    Allowing it lets a read-only call run those; it cannot write, because the connection is
    opened read-only and SQLite refuses to modify the schema table without ``writable_schema``.
    """
    return action == sqlite3.SQLITE_UPDATE and table in ("sqlite_master", "sqlite_temp_master")


def _check_function(name: str) -> str | None:
    return f"function {clip(name, 40)}() is not allowed" if name in DENIED_FUNCTIONS else None


def _check_write(action: int, arg2: str | None) -> str | None:
    if action in _WRITE_DENIED:
        return _WRITE_DENIED[action]
    if action == sqlite3.SQLITE_CREATE_VTABLE and (arg2 or "").lower() not in VTABLE_MODULES:
        return f"virtual table module {clip(arg2 or '', 40)!r} is not allowed"
    return None


def _check_pragma(name: str, argument: str | None) -> str | None:
    if name in QUERY_PRAGMAS or (name in READ_PRAGMAS and argument is None):
        return None
    if name in READ_PRAGMAS:
        return f"PRAGMA {name} may be read but not set"
    return f"PRAGMA {clip(name, 40)} is not allowed"


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
