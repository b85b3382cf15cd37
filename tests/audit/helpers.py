"""Helpers for the audit tests: write a real chained log, tamper with it, run ``audit verify``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from scoped_mcp.audit.log import AuditLog, open_audit_log
from scoped_mcp.identity import AgentContext
from scoped_mcp.redaction import Redactor
from tests.support import base_env, run_cli

AGENT = AgentContext("audit-01", "auditor")


def open_log(path: Path, **options: Any) -> AuditLog:
    """An audit log with the server's standard pipeline."""
    return open_audit_log(path, AGENT, Redactor(), **options)


def write_records(path: Path, count: int, **options: Any) -> None:
    """Append ``count`` tool_call records to ``path`` and close it, as one server run would."""
    log = open_log(path, **options)
    for i in range(count):
        log.record("tool_call", tool=f"probe_{i}", outcome="ok", duration_ms=0.1)
    log.close()


def lines(path: Path) -> list[bytes]:
    """The file's lines, each with its newline."""
    return path.read_bytes().splitlines(keepends=True)


def records(path: Path) -> list[dict[str, Any]]:
    """The file's records, parsed."""
    return [json.loads(line) for line in lines(path)]


def verify(*paths: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """``scoped-mcp audit verify PATHS...`` as an operator would run it."""
    return run_cli("audit", "verify", *map(str, paths), env=base_env(home))
