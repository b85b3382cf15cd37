"""sqlite: one SQLite database file per agent.

``module`` holds the tools, ``policy`` the authorizer and limits SQLite enforces, ``errors`` the
one place sqlite3 errors become ours.
"""

from __future__ import annotations

from scoped_mcp.modules.sqlite.module import SqliteModule

__all__ = ["SqliteModule"]
