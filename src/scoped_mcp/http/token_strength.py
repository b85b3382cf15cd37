"""How guessable an HTTP bearer token looks, judged from its shape (never shown).

The estimate is ``length x log2(alphabet)``, the alphabet being the smallest usual one holding
every character of the token: hex (16), base64/base64url (65 with padding), printable ASCII (95),
anything else (256 per byte). A token is ``weak`` below ``STRONG_BITS`` (256 bits: 32 random
bytes, what ``secrets.token_urlsafe(32)`` gives) or with fewer than ``MIN_DISTINCT`` distinct
characters. It is an upper bound: a long dictionary phrase looks strong to it.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass

STRONG_BITS = 256
MIN_DISTINCT = 8
_HEX = frozenset(string.hexdigits.encode())
_BASE64 = frozenset((string.ascii_letters + string.digits + "+/-_=").encode())
_PRINTABLE = frozenset(bytes(range(0x20, 0x7F)))


@dataclass(frozen=True, slots=True)
class Strength:
    """The verdict on one token: its estimated bits and whether that is enough."""

    bits: int
    distinct: int

    @property
    def weak(self) -> bool:
        return self.bits < STRONG_BITS or self.distinct < MIN_DISTINCT

    def __repr__(self) -> str:
        return f"Strength(bits={self.bits}, weak={self.weak})"


def judge(value: bytes | memoryview) -> Strength:
    """The estimated strength of ``value``."""
    chars = frozenset(value)
    if chars <= _HEX:
        alphabet = 16
    elif chars <= _BASE64:
        alphabet = 65
    elif chars <= _PRINTABLE:
        alphabet = 95
    else:
        alphabet = 256
    return Strength(int(len(value) * math.log2(alphabet)), len(chars))
