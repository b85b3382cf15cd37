"""Reading what the audit log recorded during a test.

    with capture_audit(audit_path) as audit:
        await harness.call("notes_get", key="k")
    assert audit.last()["outcome"] == "ok"

Only the records appended inside the block are seen, so a test need not care what start-up wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class AuditCapture:
    """The records appended to one audit file since the capture began, parsed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = path.stat().st_size if path.exists() else 0

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every complete record appended since the capture began, oldest first."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def of(self, event: str) -> list[dict[str, Any]]:
        """The captured records of one event (``tool_call``, ``credential``, ...)."""
        return [record for record in self.records if record.get("event") == event]

    def last(self, event: str | None = None) -> dict[str, Any]:
        """The newest captured record (of ``event``, if given); an AssertionError if none."""
        found = self.records if event is None else self.of(event)
        assert found, f"no {event or 'audit'} record was written to {self.path}"
        return found[-1]


@contextmanager
def capture_audit(path: Path) -> Iterator[AuditCapture]:
    """Capture the records appended to ``path`` inside the ``with`` block."""
    yield AuditCapture(path)
