"""``scoped-mcp creds check --audit FILE``: which keys an audit log says were exposed.

A ``credential_exposed`` record (``credentials/exposure.py``) means a released value reached a
tool's answer; redaction removed it, but whatever produced it holds it. A leased value was revoked
at once and needs nothing more (unless its revocation failed); a static one stays valid until
someone rotates it in its backend. This reads the records and says which keys to rotate; it
never sees a value, since no record holds one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from scoped_mcp.audit.records import CREDENTIAL_EXPOSED
from scoped_mcp.errors import ScopedMCPError


@dataclass(frozen=True, slots=True)
class Exposure:
    """Every exposure of one source's keys in the log, with the remedy of the last one."""

    keys: tuple[str, ...]
    backend: str
    source: str
    dynamic: bool
    remedy: str
    count: int
    last: str
    tools: tuple[str, ...]

    @property
    def needs_rotation(self) -> bool:
        """A static value, or a lease whose revocation failed: still usable by whoever has it."""
        return self.remedy in ("rotate", "revoke_failed")

    def warning(self) -> str:
        keys = ", ".join(self.keys)
        seen = f"exposed {self.count} time(s), last {self.last} in {', '.join(self.tools)}"
        if self.remedy == "revoke_failed":
            return (
                f"{keys} ({self.source}): {seen}; its lease could not be revoked: revoke it "
                f"by hand (bao lease revoke -prefix {self.source.partition(':')[2]})"
            )
        return f"{keys} ({self.source}): {seen}: rotate it in {self.backend}"


def read_exposures(path: str) -> list[Exposure]:
    """The exposures an audit file records, one per source, in the order first seen."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ScopedMCPError(
            f"--audit {path}: cannot be read ({exc.strerror})",
            fix="name the agent's audit file (see docs/audit.md for where it is)",
        ) from None
    found: dict[str, list[dict[str, object]]] = {}
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn last line; audit verify reports those
        if isinstance(record, dict) and record.get("event") == CREDENTIAL_EXPOSED:
            found.setdefault(str(record.get("source")), []).append(record)
    return [_summarise(source, items) for source, items in found.items()]


def _summarise(source: str, items: list[dict[str, object]]) -> Exposure:
    last = items[-1]
    keys = last.get("key")
    failed = any(item.get("remedy") == "revoke_failed" for item in items)
    return Exposure(
        keys=tuple(str(k) for k in keys) if isinstance(keys, list) else (),
        backend=str(last.get("backend")),
        source=source,
        dynamic=bool(last.get("dynamic")),
        remedy="revoke_failed" if failed else str(last.get("remedy")),
        count=len(items),
        last=str(last.get("timestamp")),
        tools=tuple(sorted({str(item.get("tool")) for item in items})),
    )
