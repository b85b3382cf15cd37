"""Size-based rotation: files are renamed .1 ... .keep, and the chain runs across them."""

from __future__ import annotations

import hashlib
import itertools
import stat
from pathlib import Path

from tests.audit.helpers import lines, records, verify, write_records


def _rotated(tmp_path: Path) -> list[Path]:
    path = tmp_path / "a.jsonl"
    write_records(path, 120, max_bytes=4096, keep=3)
    return [
        path.with_name("a.jsonl.3"),
        path.with_name("a.jsonl.2"),
        path.with_name("a.jsonl.1"),
        path,
    ]


def test_rotation_keeps_at_most_keep_files(tmp_path: Path) -> None:
    """With keep=3 there are the live file and .1 to .3, each 0600, none much over max_bytes
    (beside them only the writer's lock file, which rotation never moves)."""
    files = _rotated(tmp_path)
    expected = [p.name for p in files] + [".a.jsonl.lock"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.stat().st_size < 4096 + 400


def test_new_file_links_to_the_last_line_of_the_previous(tmp_path: Path) -> None:
    """The first record of each rotated-to file is a 'rotated' segment whose prev is the hash
    of the previous file's last line, and seq continues."""
    files = _rotated(tmp_path)
    for older, newer in itertools.pairwise(files):
        first = records(newer)[0]
        assert first["chain"]["reason"] == "rotated"
        assert first["prev"] == hashlib.sha256(lines(older)[-1].rstrip(b"\n")).hexdigest()
        assert first["seq"] == records(older)[-1]["seq"] + 1


def test_verify_accepts_rotated_files_in_order(tmp_path: Path) -> None:
    """verify over the kept files, oldest first, passes and counts every record."""
    files = _rotated(tmp_path)
    result = verify(*files, home=tmp_path / "home")
    assert result.returncode == 0, result.stdout
    total = sum(len(lines(p)) for p in files)
    assert result.stdout.startswith(f"{total} records, chain intact")


def test_verify_of_the_live_file_alone_notes_the_unchecked_link(tmp_path: Path) -> None:
    """The live file alone verifies, with a note that its link to the older file was not checked."""
    files = _rotated(tmp_path)
    result = verify(files[-1], home=tmp_path / "home")
    assert result.returncode == 0, result.stdout
    assert "note:" in result.stdout
    assert "continues a chain" in result.stdout


def test_missing_middle_file_is_detected(tmp_path: Path) -> None:
    """Leaving out a rotated file in the middle breaks the link at the next file's first line."""
    files = _rotated(tmp_path)
    result = verify(files[0], files[2], files[3], home=tmp_path / "home")
    assert result.returncode == 1
    assert f"first at {files[2]} line 1 (missing)" in result.stdout


def test_wrong_file_order_is_detected_with_a_hint(tmp_path: Path) -> None:
    """Files given newest first do not verify, and the output says to pass them oldest first."""
    files = _rotated(tmp_path)
    result = verify(*reversed(files), home=tmp_path / "home")
    assert result.returncode == 1
    assert "oldest first" in result.stdout
