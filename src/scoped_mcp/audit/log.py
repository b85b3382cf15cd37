"""The audit log: one JSON object per line, appended to a 0600 file, flushed per record.

A record is built by a pipeline of small processors (each ``(record) -> record``): identity, then
timestamp, then redaction; then, under the log's lock, the hash chain (``chain.py``) and rendering.
The pipeline is configured per ``AuditLog`` instance; there is no global state. Field reference:
docs/audit.md.

A record that cannot be written (a full disk) raises ``AuditUnavailable`` and starts an outage:
one ops-log line, every record lost meanwhile counted by event. The first record that can be
written again is preceded by an ``audit_gap`` record saying since when, why and what was lost, so
the chain stays intact and the gap is on record.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scoped_mcp.audit import records
from scoped_mcp.audit.chain import resume
from scoped_mcp.audit.records import Draft
from scoped_mcp.audit.sink import DEFAULT_KEEP, DEFAULT_MAX_BYTES, AuditFile, LogInUse
from scoped_mcp.errors import AuditUnavailable, ConfigError
from scoped_mcp.identity import AgentContext
from scoped_mcp.redaction import Redactor

Record = dict[str, Any]
Processor = Callable[[Record], Record]
_log = logging.getLogger(__name__)

# Built once: json.dumps with keyword arguments constructs a new encoder on every call.
_LINE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def add_identity(agent_ctx: AgentContext) -> Processor:
    """Stamp every record with the agent it belongs to."""

    def process(record: Record) -> Record:
        return {"agent_id": agent_ctx.agent_id, "agent_type": agent_ctx.agent_type, **record}

    return process


def add_timestamp(record: Record) -> Record:
    """Prepend an RFC 3339 UTC timestamp with microseconds."""
    stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return {"timestamp": stamp, **record}


def redact_with(redactor: Redactor) -> Processor:
    """Scrub released secrets from every string in the record."""

    def process(record: Record) -> Record:
        scrubbed: Record = redactor.scrub_value(record)
        return scrubbed

    return process


def _reason(exc: OSError) -> str:
    """A short, fixed description of why a record could not be written."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk full"
    if exc.errno == errno.EFBIG:
        return "file too large"
    return exc.strerror or type(exc).__name__


@dataclass
class _Outage:
    """Since when the log cannot be written, why, and how many records of each event were lost."""

    since: str
    error: str
    lost: Counter[str] = field(default_factory=Counter)


def default_path(agent_ctx: AgentContext, environ: dict[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/scoped-mcp/audit/{agent_id}.jsonl`` (``~/.local/state`` by default)."""
    env = os.environ if environ is None else environ
    state = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "scoped-mcp" / "audit" / f"{agent_ctx.agent_id}.jsonl"


class AuditLog:
    """Appends audit records to one file. Thread- and task-safe; each record is one write().

    The processors run first, outside the lock (they are pure). Then, under one lock, the chain
    stamps ``seq``/``prev``, the record is rendered and written, and the chain advances to the
    written line, so records finishing at once can never link to the same predecessor.
    """

    def __init__(
        self,
        path: Path,
        processors: Sequence[Processor],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        keep: int = DEFAULT_KEEP,
    ) -> None:
        self.path = path
        self._processors = tuple(processors)
        self._lock = threading.Lock()
        self._file = AuditFile(path, max_bytes=max_bytes, keep=keep)
        try:
            tail = self._file.tail()
            if tail.line is not None and not tail.complete:
                self._file.write(b"\n")  # end the torn line, so it is never glued to ours
        except BaseException:
            self._file.close()
            raise
        self._chain = resume(tail)
        self._outage: _Outage | None = None

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def write(self, draft: Draft) -> None:
        """Write one record built by ``audit/records.py``; ``AuditUnavailable`` if it cannot be."""
        self._write(draft.event, draft.fields)

    def record(self, event: str, **fields: Any) -> None:
        """Write one record for ``event``, never raising; ``None`` fields are left out.

        For events that must not stop the work that causes them (the broker's credential events:
        a revocation goes on even when its record cannot be written). A record that cannot be
        written is counted in the next ``audit_gap``.
        """
        with suppress(AuditUnavailable):
            self._write(event, fields)

    def _write(self, event: str, fields: dict[str, Any]) -> None:
        record = self._process(
            {"event": event, **{k: v for k, v in fields.items() if v is not None}}
        )
        with self._lock:
            if self._outage is not None:
                self._close_gap(event)
            self._append(record, event)

    def _process(self, record: Record) -> Record:
        for process in self._processors:
            record = process(record)
        return record

    def _append(self, record: Record, event: str) -> None:
        """Chain, render and write one record (the lock is held)."""
        try:
            if self._file.full:
                # Marked first: if the rename succeeds and the reopen fails, the record that
                # finally reaches the fresh file must still open its segment.
                self._chain.start_segment("rotated")
                self._file.rotate()
            line = _LINE_ENCODER.encode(self._chain(record)).encode("utf-8", "backslashreplace")
            self._file.write(line + b"\n")
        except OSError as exc:
            raise self._failed(event, exc) from None
        self._chain.advance(line)

    def _failed(self, event: str, exc: OSError) -> AuditUnavailable:
        """Count a lost record; the first of an outage is logged (once, not per call)."""
        if self._outage is None:
            self._outage = _Outage(since=add_timestamp({})["timestamp"], error=_reason(exc))
            _log.error(
                "audit log write failed: tool calls are refused until it can be written",
                extra={"path": str(self.path), "error": self._outage.error},
            )
        self._outage.lost[event] += 1
        return AuditUnavailable(self._outage.error)

    def _close_gap(self, event: str) -> None:
        """Write the ``audit_gap`` record that ends an outage (the lock is held)."""
        outage = self._outage
        assert outage is not None
        gap = records.audit_gap(since=outage.since, error=outage.error, lost=dict(outage.lost))
        self._append(self._process({"event": gap.event, **gap.fields}), event)
        self._outage = None
        _log.warning(
            "audit log writable again",
            extra={"path": str(self.path), "lost": sum(outage.lost.values())},
        )

    @property
    def head(self) -> str | None:
        """The hash of the last line written: anchor it elsewhere to pin the whole log."""
        with self._lock:
            return self._chain.head

    def close(self) -> None:
        """Close the file; later records are an error."""
        with self._lock:
            self._file.close()


def open_audit_log(
    path: Path,
    agent_ctx: AgentContext,
    redactor: Redactor,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    keep: int = DEFAULT_KEEP,
    extra: Sequence[Processor] = (),
) -> AuditLog:
    """The standard pipeline: identity -> timestamp -> redaction -> [extra] -> chain -> JSON line.

    ``extra`` steps (telemetry) see records already scrubbed of secrets.

    Raises ``ConfigError`` when the file cannot be opened (a symbolic link, a missing or read-only
    directory): the server does not run without its audit trail.
    """
    processors = [add_identity(agent_ctx), add_timestamp, redact_with(redactor), *extra]
    try:
        return AuditLog(path, processors, max_bytes=max_bytes, keep=keep)
    except LogInUse as exc:
        holder = f"pid {exc.pid}" if exc.pid is not None else "pid unknown"
        raise ConfigError(
            f"the audit log {path} is in use by another scoped-mcp server ({holder})",
            fix="stop that server, or give this agent its own audit.path in the manifest: "
            "each audit file has one writer",
        ) from None
    except OSError as exc:
        reason = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise ConfigError(
            f"cannot open the audit log {path}: {reason}",
            fix="set audit.path in the manifest to a regular file in a directory this user can "
            "write (symbolic links are refused)",
        ) from None


def monotonic_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()`` value), rounded to 0.001."""
    return round((time.perf_counter() - started) * 1000, 3)
