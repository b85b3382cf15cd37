"""Property tests of the verifier: any changed byte before the last line is caught, and no
input, however mangled, makes it crash."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoped_mcp.audit.verify import verify
from tests.audit.helpers import write_records

_ORIGINAL: dict[str, bytes] = {}


def _original() -> bytes:
    """One real six-record log, written once."""
    if "log" not in _ORIGINAL:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "a.jsonl"
            write_records(path, 6)
            _ORIGINAL["log"] = path.read_bytes()
    return _ORIGINAL["log"]


def _verify_bytes(data: bytes) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.jsonl"
        path.write_bytes(data)
        return verify([path]).intact


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_changed_byte_before_the_last_line_is_detected(data: st.DataObject) -> None:
    """Changing one byte anywhere before the last line always breaks verification."""
    original = _original()
    last_start = original.rstrip(b"\n").rfind(b"\n") + 1
    where = data.draw(st.integers(0, last_start - 1))
    value = data.draw(st.integers(0, 255).filter(lambda b: b != original[where]))
    mutated = original[:where] + bytes([value]) + original[where + 1 :]
    assert not _verify_bytes(mutated)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 2000))
def test_verifier_never_crashes(noise: bytes, where: int) -> None:
    """Arbitrary bytes spliced into a real log give a verdict, never an exception."""
    original = _original()
    where = min(where, len(original))
    _verify_bytes(original[:where] + noise + original[where:])
