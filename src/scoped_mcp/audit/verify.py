"""Checks audit files against the hash-chain rule (``chain.py``) and says what is wrong where.

Files are checked in the order given (oldest first: ``log.2 log.1 log``), as one chain. Every
problem is located at the line that is wrong, not only the line where the link breaks: an edited
line is named itself, a deleted record by the gap it leaves, a moved line by where its predecessor
is now. After a problem the check re-synchronises on the next line, so one edit is one problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from scoped_mcp.audit.chain import line_hash


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken place in the chain."""

    file: str
    line: int
    kind: str  # edited, missing, reordered, inserted, truncated, bad_json, unchained, damaged, ...
    detail: str


@dataclass(frozen=True, slots=True)
class Line:
    """One line of one file, parsed if it could be."""

    file: str
    number: int
    digest: str
    record: dict[str, Any] | None  # None: not a JSON object
    complete: bool  # False: the file ends without a newline after it


@dataclass
class Report:
    """The outcome of a verification."""

    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    head: str | None = None

    @property
    def intact(self) -> bool:
        return not self.problems


def read_lines(path: Path) -> list[Line]:
    """Every line of ``path`` with its chain hash; a last line without newline is marked."""
    data = path.read_bytes()
    pieces = data.split(b"\n")
    lines = []
    for index, raw in enumerate(pieces):
        last = index == len(pieces) - 1
        if last and raw == b"":
            break
        lines.append(Line(str(path), index + 1, line_hash(raw), _parse(raw), not last))
    return lines


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def verify(paths: list[Path]) -> Report:
    """Verify ``paths`` (oldest first) as one chain."""
    files = [read_lines(path) for path in paths]
    checker = _Checker([line for lines in files for line in lines])
    for lines in files:
        checker.check_file(lines)
    report = checker.report
    report.problems.sort(key=lambda p: (checker.order[p.file], p.line))
    return report


class _Checker:
    """Walks the lines in order, remembering the previous one."""

    def __init__(self, every: list[Line]) -> None:
        self.report = Report()
        self.order: dict[str, int] = {}
        self.position = {line.digest: i for i, line in enumerate(every)}
        self.every = every
        self.index = -1
        self.before: Line | None = None  # the line before the current one, across files
        self.flagged: set[tuple[str, int]] = set()

    def problem(self, line: Line, kind: str, detail: str) -> None:
        """Record a problem at ``line``, once: later symptoms of the same damage are dropped."""
        if (line.file, line.number) not in self.flagged:
            self.flagged.add((line.file, line.number))
            self.report.problems.append(Problem(line.file, line.number, kind, detail))

    def check_file(self, lines: list[Line]) -> None:
        if lines:
            self.order.setdefault(lines[0].file, len(self.order))
        for number, line in enumerate(lines):
            self.index += 1
            self.check_line(line, first_in_file=number == 0)
            self.before = line
            self.report.head = line.digest

    def check_line(self, line: Line, *, first_in_file: bool) -> None:
        record = line.record
        if not line.complete:
            self.problem(line, "truncated", "the last line has no newline: it was cut short")
            return
        if record is None:
            self.problem(line, "bad_json", "not a JSON object (a torn write, or edited)")
            return
        seq, prev = record.get("seq"), record.get("prev")
        if not _is_int(seq) or "prev" not in record:
            self.problem(line, "unchained", "no seq/prev: written before the chain, or forged")
            return
        self.report.records += 1
        if record.get("event") == "audit_gap":
            self.note_gap(line, record)
        opening = record.get("chain")
        if isinstance(opening, dict):
            self.check_opening(line, opening, seq, prev, first_in_file=first_in_file)
        elif first_in_file:
            self.check_file_start(line)
        else:
            self.check_link(line, seq, prev)

    def note_gap(self, line: Line, record: dict[str, Any]) -> None:
        """A gap the server itself recorded is no break in the chain, but the reader must know."""
        lost = record.get("lost")
        count = sum(v for v in lost.values() if _is_int(v)) if isinstance(lost, dict) else "?"
        self.report.notes.append(
            f"{line.file}:{line.number}: {count} record(s) could not be written from "
            f"{record.get('since')} ({record.get('error')}); calls were refused meanwhile"
        )

    def check_opening(
        self, line: Line, opening: dict[str, Any], seq: Any, prev: Any, *, first_in_file: bool
    ) -> None:
        reason = opening.get("reason")
        before = self.before
        if reason == "new":
            if prev is not None or seq != 0 or not first_in_file:
                self.problem(line, "inserted", "a chain start ('new') in the middle of a chain")
            elif before is not None:
                self.problem(
                    line, "missing", f"starts a new chain: it does not follow {_name(before)}"
                )
            return
        if before is None:
            self.report.notes.append(
                f"{line.file} continues a chain from a line not given here ({reason}, prev "
                f"{str(prev)[:16]}...): pass the older files first to check that link too"
            )
            return
        if reason not in ("damaged_tail", "unchained_tail") or prev != before.digest:
            self.check_link(line, seq, prev)
        elif reason == "damaged_tail" and before.record is not None:
            # The torn line parsed (only its newline was lost); the damage is still reported.
            self.problem(before, "damaged", "found torn (no newline) when the log was reopened")

    def check_file_start(self, line: Line) -> None:
        before = self.before
        if before is None:
            self.problem(
                line, "missing", "the file does not start a chain: its first record(s) were removed"
            )
        else:
            self.problem(
                line,
                "missing",
                f"does not start a segment after {_name(before)}: records are missing",
            )

    def check_link(self, line: Line, seq: Any, prev: Any) -> None:
        before = self.before
        assert before is not None
        if prev == before.digest:
            self.check_seq(line, seq, before)
            return
        where = self.position.get(prev) if isinstance(prev, str) else None
        if where is not None and where > self.index:
            other = self.every[where]
            self.problem(
                line, "reordered", f"out of order: it follows {_at(other)}, which comes later"
            )
            self.flagged.add((other.file, other.number))
        elif where is not None and where == self.index - 2:
            self.problem(before, "inserted", f"not in the chain: {_at(line)} links past it")
        elif where is not None:
            other = self.every[where]
            self.problem(
                line, "reordered", f"out of place: it follows {_at(other)} (moved or copied)"
            )
        else:
            self.describe_unknown_prev(line, seq, before)

    def describe_unknown_prev(self, line: Line, seq: Any, before: Line) -> None:
        before_seq = before.record.get("seq") if before.record else None
        if _is_int(seq) and _is_int(before_seq) and seq > before_seq + 1:
            gap = seq - before_seq - 1
            self.problem(
                line, "missing", f"{gap} record(s) deleted before it (seq {before_seq} -> {seq})"
            )
        elif _is_int(seq) and _is_int(before_seq) and seq == before_seq + 1:
            self.problem(
                before, "edited", f"changed after it was written ({_at(line)} holds its old hash)"
            )
        else:
            self.problem(line, "edited", "its seq/prev were altered: it links to no line here")

    def check_seq(self, line: Line, seq: Any, before: Line) -> None:
        before_seq = before.record.get("seq") if before.record else None
        if _is_int(before_seq) and seq != before_seq + 1:
            self.problem(line, "edited", f"seq {seq} should be {before_seq + 1}")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _at(line: Line) -> str:
    return f"{Path(line.file).name} line {line.number}"


def _name(line: Line) -> str:
    return Path(line.file).name
