"""Argument checks shared by the notification modules: text limits and control characters."""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

from scoped_mcp.errors import InvalidArgument

_LINE_BREAKS = frozenset("\n\t")


def check_text(
    value: str,
    what: str,
    *,
    max_bytes: int | None = None,
    max_chars: int | None = None,
    multiline: bool = True,
    required: bool = True,
) -> str:
    """Return ``value`` if it fits the limits and holds no control character, else refuse.

    ``multiline`` allows newline and tab (message bodies); single-line fields (titles, subjects,
    tags) allow no control character at all, so no value can start a new header or line.
    """
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string")
    if required and not value.strip():
        raise InvalidArgument(f"{what} must not be empty")
    if max_chars is not None and len(value) > max_chars:
        raise InvalidArgument(f"{what} is longer than {max_chars} characters")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} is not valid Unicode (lone surrogate)") from None
    if max_bytes is not None and size > max_bytes:
        raise InvalidArgument(f"{what} is larger than {max_bytes} bytes (UTF-8)")
    allowed = _LINE_BREAKS if multiline else frozenset()
    for char in value:
        if char in allowed:
            continue
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            kind = "a line break" if char in "\r\n\u2028\u2029\x85" else "a control character"
            raise InvalidArgument(f"{what} contains {kind}")
    return value


def check_web_url(value: str, what: str, *, max_chars: int = 2048) -> str:
    """Return ``value`` if it is an absolute http(s) URL with a host and no whitespace."""
    check_text(value, what, max_chars=max_chars, multiline=False)
    if any(char.isspace() for char in value):
        raise InvalidArgument(f"{what} must not contain spaces")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise InvalidArgument(f"{what} is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"{what} must be an http:// or https:// URL")
    return value
