"""``scoped-mcp audit tail FILE``: the last audit records, one readable line each, optionally live.

Filters (``--agent``, ``--outcome``, ``--event``) apply before ``-n``. ``--follow`` keeps printing
records as they are appended, and picks up the fresh file after a rotation. Colour only on a tty.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from scoped_mcp.audit import records

EXIT_OK, EXIT_UNREADABLE = 0, 2
POLL_SECONDS = 0.25
_HIDDEN = {"timestamp", "agent_id", "agent_type", "event", "seq", "prev", "chain"}
_COLOURS = {"ok": "32", "denied": "33", "error": "31", "failed": "31", "credential": "36"}


@dataclass(frozen=True, slots=True)
class Filters:
    """Which records to show; ``None`` matches anything."""

    agent: str | None = None
    outcome: str | None = None
    event: str | None = None

    def match(self, record: dict[str, Any]) -> bool:
        return (
            (self.agent is None or record.get("agent_id") == self.agent)
            and (self.outcome is None or record.get("outcome") == self.outcome)
            and (self.event is None or record.get("event") == self.event)
        )


def run(
    path: str,
    *,
    filters: Filters,
    count: int,
    follow: bool,
    out: TextIO | None = None,
    keep_going: Callable[[], bool] = lambda: True,
) -> int:
    """The whole command; returns the exit code."""
    out = out or sys.stdout
    paint = _painter(out.isatty())
    try:
        handle = Path(path).open("rb")  # noqa: SIM115 - held open across the follow loop
    except OSError as exc:
        print(f"scoped-mcp: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_UNREADABLE
    with handle:
        last: deque[str] = deque(maxlen=count if count > 0 else None)
        for line in _complete_lines(handle):
            if (text := _shown(line, filters, paint)) is not None:
                last.append(text)
        for text in last:
            print(text, file=out)
        out.flush()
        if follow:
            _follow(
                Path(path), handle, filters=filters, paint=paint, out=out, keep_going=keep_going
            )
    return EXIT_OK


def _complete_lines(handle: Any) -> Iterator[bytes]:
    """Whole lines from the current position; a partial last line is left unread for later."""
    while True:
        start = handle.tell()
        line = handle.readline()
        if not line.endswith(b"\n"):
            handle.seek(start)
            return
        yield line[:-1]


def _follow(
    path: Path,
    handle: Any,
    *,
    filters: Filters,
    paint: Callable[[str, str], str],
    out: TextIO,
    keep_going: Callable[[], bool],
) -> None:
    try:
        while keep_going():
            for line in _complete_lines(handle):
                if (text := _shown(line, filters, paint)) is not None:
                    print(text, file=out, flush=True)
            if _rotated(path, handle):
                handle.close()
                handle = path.open("rb")
                continue
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        return
    finally:
        handle.close()


def _rotated(path: Path, handle: Any) -> bool:
    try:
        now = path.stat()
    except FileNotFoundError:
        return False
    return now.st_ino != os.fstat(handle.fileno()).st_ino


def _shown(line: bytes, filters: Filters, paint: Callable[[str, str], str]) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        unfiltered = filters == Filters()
        return paint("31", f"(not a JSON record) {line[:120]!r}") if unfiltered else None
    return format_record(record, paint) if filters.match(record) else None


def format_record(record: dict[str, Any], paint: Callable[[str, str], str]) -> str:
    """One line: time, agent, event, then what matters for that event."""
    stamp = str(record.get("timestamp", "?")).replace("T", " ")[:23]
    event = str(record.get("event", "?"))
    head = f"{paint('2', stamp)}  {record.get('agent_id', '?')}  {event:<11}"
    if event == records.TOOL_CALL:
        outcome = str(record.get("outcome", "?"))
        mode = f" ({record['mode']})" if "mode" in record else ""
        text = (
            f"{head} {record.get('tool', '?')}{mode} {paint(_COLOURS.get(outcome, '0'), outcome)}"
        )
        text += f" {record.get('duration_ms', '?')} ms"
        return text + (f"  {record['error']}" if "error" in record else "")
    if event == records.CALL_START:
        return f"{head} {record.get('tool', '?')} ({record.get('mode', '?')}) started"
    if event == records.AUDIT_GAP:
        lost = record.get("lost")
        count = (
            sum(v for v in lost.values() if isinstance(v, int)) if isinstance(lost, dict) else "?"
        )
        since, error = record.get("since", "?"), record.get("error", "?")
        return paint("31", f"{head} {count} record(s) not written since {since} ({error})")
    if event == records.CREDENTIAL:
        action = str(record.get("action", "?"))
        keys = record.get("key", [])
        keys = ",".join(keys) if isinstance(keys, list) else str(keys)
        rest = _rest(record, {"action", "key"})
        return f"{head} {paint(_COLOURS.get(action, '36'), action)} {keys}  {rest}".rstrip()
    return f"{head} {_rest(record, set())}".rstrip()


def _rest(record: dict[str, Any], skip: set[str]) -> str:
    parts = []
    for key, value in record.items():
        if key in _HIDDEN or key in skip:
            continue
        shown = ",".join(map(str, value)) if isinstance(value, list) else value
        shown = json.dumps(shown, separators=(",", ":")) if isinstance(shown, dict) else shown
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def _painter(colour: bool) -> Callable[[str, str], str]:
    def paint(code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if colour else text

    return paint
