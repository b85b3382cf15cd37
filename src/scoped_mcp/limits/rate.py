"""A rate as a manifest writes it (``30/minute``): a count of calls per unit of time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

UNITS: Final = {"second": 1.0, "s": 1.0, "minute": 60.0, "m": 60.0, "hour": 3600.0, "h": 3600.0}
_NAMES: Final = {1.0: "second", 60.0: "minute", 3600.0: "hour"}
MAX_COUNT: Final = 1_000_000
FORMS: Final = "N/second, N/minute or N/hour (or N/s, N/m, N/h), e.g. 30/minute"
_RATE = re.compile(r"^\s*(\d{1,7})\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` calls per ``period`` seconds."""

    count: int
    period: float

    def __str__(self) -> str:
        calls = "call" if self.count == 1 else "calls"
        return f"{self.count} {calls} per {_NAMES[self.period]}"

    @property
    def per_second(self) -> float:
        """Tokens a bucket of this rate regains each second."""
        return self.count / self.period


def parse_rate(text: str) -> Rate:
    """``30/minute`` as a ``Rate``; ``ValueError`` naming the accepted forms otherwise."""
    match = _RATE.match(text)
    unit = match.group(2) if match else None
    if match is None or unit not in UNITS:
        raise ValueError(f"{text!r} is not a rate: write {FORMS}")
    count = int(match.group(1))
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f"{text!r}: the count must be 1 to {MAX_COUNT}")
    return Rate(count, UNITS[unit])
