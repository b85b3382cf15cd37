"""The dozen-line verifier printed in docs/audit.md agrees with the logs the server writes."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.audit.helpers import lines, write_records

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def _reference() -> Callable[[list[str]], Any]:
    text = DOC.read_text()
    match = re.search(r"<!-- reference-verifier -->\n```python\n(.*?)```", text, re.S)
    assert match, "docs/audit.md lost its reference verifier"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), str(DOC), "exec"), namespace)
    verify: Callable[[list[str]], Any] = namespace["verify"]
    return verify


def test_reference_verifier_accepts_rotated_and_restarted_logs(tmp_path: Path) -> None:
    """A log written in two runs and rotated across three files passes the documented rule."""
    path = tmp_path / "a.jsonl"
    write_records(path, 40, max_bytes=4096, keep=9)
    write_records(path, 40, max_bytes=4096, keep=9)
    files = sorted(tmp_path.glob("a.jsonl.*"), key=lambda p: -int(p.suffix[1:]))
    assert _reference()([str(p) for p in [*files, path]]) == 79


@pytest.mark.parametrize("damage", ["edit", "delete", "swap", "truncate"])
def test_reference_verifier_rejects_tampering(tmp_path: Path, damage: str) -> None:
    """The documented rule rejects an edited, deleted, swapped or truncated line."""
    path = tmp_path / "a.jsonl"
    write_records(path, 8)
    content = lines(path)
    if damage == "edit":
        content[3] = content[3].replace(b'"ok"', b'"no"')
    elif damage == "delete":
        del content[3]
    elif damage == "swap":
        content[3], content[4] = content[4], content[3]
    path.write_bytes(b"".join(content)[: -20 if damage == "truncate" else None])
    with pytest.raises((AssertionError, ValueError)):
        _reference()([str(path)])
