"""Reopening an existing log: the chain continues, and a torn tail is kept on record as damage."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.audit.helpers import lines, records, verify, write_records


def test_restart_continues_the_chain(tmp_path: Path) -> None:
    """A second run appends records that link to the first run's last line; verify passes."""
    path = tmp_path / "a.jsonl"
    write_records(path, 5)
    write_records(path, 5)
    found = records(path)
    assert [r["seq"] for r in found] == list(range(10))
    assert "chain" not in found[5]
    assert found[5]["prev"] == hashlib.sha256(lines(path)[4].rstrip(b"\n")).hexdigest()
    result = verify(path, home=tmp_path / "home")
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("10 records, chain intact")


def test_new_file_starts_with_a_seeded_chain(tmp_path: Path) -> None:
    """The first record of a new file opens the chain: prev null, seq 0, a random nonce."""
    path = tmp_path / "a.jsonl"
    write_records(path, 1)
    write_records(tmp_path / "b.jsonl", 1)
    first, other = records(path)[0], records(tmp_path / "b.jsonl")[0]
    assert (first["prev"], first["seq"], first["chain"]["reason"]) == (None, 0, "new")
    assert len(first["chain"]["nonce"]) == 32
    assert first["chain"]["nonce"] != other["chain"]["nonce"]


def test_torn_tail_starts_a_new_segment_and_is_still_reported(tmp_path: Path) -> None:
    """After a crash mid-write the next run ends the torn line, opens a 'damaged_tail' segment
    linked to it, and verify reports the torn line while checking everything after it."""
    path = tmp_path / "a.jsonl"
    write_records(path, 5)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])
    write_records(path, 3)
    content = lines(path)
    assert len(content) == 8
    reopened = [line for line in content if b"damaged_tail" in line]
    assert len(reopened) == 1
    result = verify(path, home=tmp_path / "home")
    assert result.returncode == 1
    assert f"first at {path} line 5 (bad_json)" in result.stdout
    assert "1 problem(s)" in result.stdout


def test_unchained_file_is_continued_but_not_passed(tmp_path: Path) -> None:
    """Appending to a file written before the chain links to its last line; verify flags the
    old unchained lines."""
    path = tmp_path / "a.jsonl"
    path.write_text('{"event":"older"}\n')
    write_records(path, 2)
    found = records(path)
    assert found[1]["chain"]["reason"] == "unchained_tail"
    result = verify(path, home=tmp_path / "home")
    assert result.returncode == 1
    assert f"first at {path} line 1 (unchained)" in result.stdout


def test_lost_newline_is_reported_once_as_damaged(tmp_path: Path) -> None:
    """A last line that lost only its newline still parses; after a restart verify reports that
    one line as damaged, and nothing else."""
    path = tmp_path / "a.jsonl"
    write_records(path, 4)
    path.write_bytes(path.read_bytes()[:-1])
    write_records(path, 2)
    result = verify(path, home=tmp_path / "home")
    assert result.returncode == 1
    assert f"first at {path} line 4 (damaged); 1 problem(s)" in result.stdout
