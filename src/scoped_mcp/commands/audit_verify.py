"""``scoped-mcp audit verify FILE...``: check the hash chain of audit files, oldest first.

Exit codes: 0 the chain is intact; 1 it is broken (the first broken record is named, then every
problem found); 2 a file cannot be read.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from scoped_mcp.audit.verify import Report, verify

EXIT_INTACT, EXIT_BROKEN, EXIT_UNREADABLE = 0, 1, 2
MAX_LISTED = 20


def run(paths: list[str], *, out: TextIO | None = None) -> int:
    """The whole command; returns the exit code."""
    out = out or sys.stdout
    try:
        report = verify([Path(p) for p in paths])
    except OSError as exc:
        print(f"scoped-mcp: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_UNREADABLE
    render(report, out, several=len(paths) > 1)
    return EXIT_INTACT if report.intact else EXIT_BROKEN


def render(report: Report, out: TextIO, *, several: bool) -> None:
    """The verdict line first, then each problem as ``file:line: kind: detail``, then notes."""
    if report.intact:
        print(f"{report.records} records, chain intact", file=out)
        print(f"head {report.head}", file=out)
        _notes(report, out)
        return
    first = report.problems[0]
    print(
        f"chain broken: first at {first.file} line {first.line} ({first.kind}); "
        f"{len(report.problems)} problem(s), {report.records} records read",
        file=out,
    )
    for problem in report.problems[:MAX_LISTED]:
        print(f"{problem.file}:{problem.line}: {problem.kind}: {problem.detail}", file=out)
    if len(report.problems) > MAX_LISTED:
        print(f"... and {len(report.problems) - MAX_LISTED} more", file=out)
    if several and any(p.line == 1 for p in report.problems):
        print("hint: pass rotated files oldest first: FILE.2 FILE.1 FILE", file=out)
    _notes(report, out)


def _notes(report: Report, out: TextIO) -> None:
    for note in report.notes:
        print(f"note: {note}", file=out)
