"""The HTTP token's strength estimate, on tokens of known shape."""

from __future__ import annotations

import pytest

from scoped_mcp.http.token_strength import judge
from tests.http.token_strength_cases import STRONG, WEAK


@pytest.mark.parametrize("token", STRONG, ids=[f"strong-{i}" for i in range(len(STRONG))])
def test_generated_tokens_of_32_random_bytes_are_strong(token: str) -> None:
    """What the docs tell operators to generate is never called weak."""
    assert not judge(token.encode()).weak


@pytest.mark.parametrize("token", WEAK, ids=[f"weak-{i}" for i in range(len(WEAK))])
def test_short_or_repetitive_tokens_are_weak(token: str) -> None:
    """Under 256 estimated bits, or few distinct characters: weak."""
    assert judge(token.encode()).weak


def test_the_repr_shows_no_value() -> None:
    """A Strength says only its estimate."""
    token = STRONG[0]
    assert token not in repr(judge(token.encode()))
