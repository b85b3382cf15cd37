"""Assertions shared by the notification module tests."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any

import pytest

from scoped_mcp.errors import ToolCallError
from scoped_mcp.redaction import encodings


def assert_clean(text: str, secrets: Iterable[str]) -> None:
    """No secret, nor any common encoding of one, appears in ``text``."""
    for secret in secrets:
        for form in encodings(secret):
            assert form not in text, f"a secret (form {form[:6]}...) leaked into {text[:120]!r}"


async def failure(call: Awaitable[Any], kind: type[ToolCallError] = ToolCallError) -> str:
    """Await a call that must fail with ``kind``; return its message (before any redaction)."""
    with pytest.raises(kind) as caught:
        await call
    message = caught.value.message
    assert len(message) < 300
    return message
