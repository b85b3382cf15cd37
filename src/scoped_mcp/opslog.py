"""The operational log: structured JSON lines on stderr. stdout belongs to the MCP protocol."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from scoped_mcp.redaction import Redactor

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Renders a log record as one JSON object, with secrets scrubbed and no traceback text."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # Exception text can carry backend responses; keep the type, never the message.
            out["exc_type"] = record.exc_info[0].__name__
        # Scrub the decoded values, not only the rendered line: JSON escaping (and str() of odd
        # extras) can change how a secret is spelled in the line.
        plain = json.loads(json.dumps(out, ensure_ascii=False, default=str))
        line = json.dumps(self._redactor.scrub_value(plain), ensure_ascii=False)
        return self._redactor.scrub(line)


def configure(
    redactor: Redactor, *, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Route every logger (ours and the libraries') to JSON on stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(redactor))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    set_levels(level)
    for noisy in ("fastmcp", "mcp"):
        lib = logging.getLogger(noisy)
        lib.handlers.clear()
        lib.propagate = True


def set_levels(level: int = logging.INFO) -> None:
    """Our loggers at ``level``, the libraries' at WARNING (FastMCP's failed-call lines off).

    A level that is already set is left alone: ``Logger.setLevel`` clears the cache of every
    logger in the process, and in a zygote's child that write to each of several hundred
    preloaded loggers costs about 1 MiB of private memory. The zygote sets these same levels
    before it forks, so a child's ``configure`` changes none of them.
    """
    _level(logging.getLogger(), logging.WARNING)
    _level(logging.getLogger("scoped_mcp"), level)
    for noisy in ("fastmcp", "mcp"):
        _level(logging.getLogger(noisy), logging.WARNING)
    # FastMCP logs every failed tool call at ERROR. Our call pipeline already audits each one and
    # logs the unexpected ones itself, so these would only be noise that looks like a fault.
    _level(logging.getLogger("fastmcp.server.server"), logging.CRITICAL)


def _level(logger: logging.Logger, level: int) -> None:
    if logger.level != level:
        logger.setLevel(level)
