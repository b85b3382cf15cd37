"""One JSON object per line, bounded in size: the control socket's framing."""

from __future__ import annotations

import json
from typing import Any

MAX_LINE = 16 * 1024
MAX_REASON_CHARS = 300
ID_CHARS = frozenset("0123456789abcdef")


class ProtocolError(Exception):
    """A line that is too long, not JSON, or not an object."""


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=True).encode("ascii") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """The object on one line (without its newline)."""
    if len(line) > MAX_LINE:
        raise ProtocolError(f"line longer than {MAX_LINE} bytes")
    try:
        value = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("not JSON") from None
    if not isinstance(value, dict):
        raise ProtocolError("not a JSON object")
    return value


def request_id(message: dict[str, Any]) -> str:
    """The ``id`` field: 10 lower-case hex digits, or ProtocolError."""
    value = message.get("id")
    if not isinstance(value, str) or len(value) != 10 or not set(value) <= ID_CHARS:
        raise ProtocolError("id must be a request id (10 hex digits)")
    return value


def reason(message: dict[str, Any]) -> str | None:
    """The optional ``reason``: one line of printable text, capped."""
    value = message.get("reason")
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError("reason must be a string")
    text = " ".join(value.split())
    if not text.isprintable():
        raise ProtocolError("reason must be printable text")
    return text[:MAX_REASON_CHARS] or None
