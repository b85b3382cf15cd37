"""``scoped-mcp audit verify``: an intact chain passes, and each kind of tampering is named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.audit.helpers import lines, verify, write_records


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """A ten-record log written by the real AuditLog."""
    path = tmp_path / "a.jsonl"
    write_records(path, 10)
    return path


def _rewrite(path: Path, new_lines: list[bytes]) -> None:
    path.write_bytes(b"".join(new_lines))


def test_intact_chain_passes(log: Path, tmp_path: Path) -> None:
    """An untouched log verifies with exit 0 and says how many records it holds."""
    result = verify(log, home=tmp_path / "home")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("10 records, chain intact\n")
    head = hashlib.sha256(lines(log)[-1].rstrip(b"\n")).hexdigest()
    assert f"head {head}" in result.stdout


def test_edited_field_is_named(log: Path, tmp_path: Path) -> None:
    """Changing one field of a middle record is reported at that record, as edited."""
    content = lines(log)
    content[3] = content[3].replace(b'"outcome":"ok"', b'"outcome":"no"')
    _rewrite(log, content)
    result = verify(log, home=tmp_path / "home")
    assert result.returncode == 1
    assert f"first at {log} line 4 (edited)" in result.stdout


def test_deleted_line_is_named(log: Path, tmp_path: Path) -> None:
    """Removing a middle record is reported where the gap is, as missing."""
    content = lines(log)
    del content[4]
    _rewrite(log, content)
    result = verify(log, home=tmp_path / "home")
    assert result.returncode == 1
    assert f"first at {log} line 5 (missing)" in result.stdout
    assert "1 record(s) deleted" in result.stdout


def test_swapped_lines_are_named(log: Path, tmp_path: Path) -> None:
    """Two records swapped are reported at the first of them, as reordered."""
    content = lines(log)
    content[4], content[5] = content[5], content[4]
    _rewrite(log, content)
    result = verify(log, home=tmp_path / "home")
    assert result.returncode == 1
    assert f"first at {log} line 5 (reordered)" in result.stdout


def test_truncated_last_line_is_named(log: Path, tmp_path: Path) -> None:
    """A last line cut mid-way (no newline) is reported as truncated."""
    data = log.read_bytes()
    log.write_bytes(data[: len(data) - 40])
    result = verify(log, home=tmp_path / "home")
    assert result.returncode == 1
    assert f"first at {log} line 10 (truncated)" in result.stdout


def test_forged_line_is_named(log: Path, tmp_path: Path) -> None:
    """A forged record that links correctly to its predecessor is still caught, as inserted."""
    content = lines(log)
    before = json.loads(content[2])
    forged = {
        **before,
        "tool": "probe_forged",
        "seq": before["seq"] + 1,
        "prev": hashlib.sha256(content[2].rstrip(b"\n")).hexdigest(),
    }
    content.insert(3, json.dumps(forged, separators=(",", ":")).encode() + b"\n")
    _rewrite(log, content)
    result = verify(log, home=tmp_path / "home")
    assert result.returncode == 1
    assert f"first at {log} line 4 (inserted)" in result.stdout


def test_dropped_first_line_is_named(log: Path, tmp_path: Path) -> None:
    """A log whose first record was removed no longer starts a chain: line 1 is reported."""
    _rewrite(log, lines(log)[1:])
    result = verify(log, home=tmp_path / "home")
    assert result.returncode == 1
    assert f"first at {log} line 1 (missing)" in result.stdout


def test_bad_json_line_is_named(log: Path, tmp_path: Path) -> None:
    """A line that is no longer JSON is reported as bad_json at that line."""
    content = lines(log)
    content[6] = b"garbage\n"
    _rewrite(log, content)
    result = verify(log, home=tmp_path / "home")
    assert result.returncode == 1
    assert f"first at {log} line 7 (bad_json)" in result.stdout


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    """A file that cannot be read is exit 2 with a message, not a traceback."""
    result = verify(tmp_path / "nope.jsonl", home=tmp_path / "home")
    assert result.returncode == 2
    assert "cannot read" in result.stderr
    assert "Traceback" not in result.stderr
