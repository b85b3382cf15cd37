"""Tokens the strength estimate must call strong, and ones it must call weak (but long enough)."""

from __future__ import annotations

import secrets

STRONG = [
    secrets.token_urlsafe(32),  # 43 base64url characters: 258 bits
    secrets.token_hex(32),  # 64 hex digits: 256 bits
    secrets.token_urlsafe(48),
]
WEAK = [
    "test-token-0123456789abcdef",  # 27 characters
    secrets.token_hex(16),  # 128 bits
    "ab" * 40,  # long, but two distinct characters
]
