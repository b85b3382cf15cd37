"""What the server needs from telemetry: an audit-pipeline processor and a shutdown."""

from __future__ import annotations

from typing import Any, Protocol


class Telemetry(Protocol):
    """Sees every audit record (after redaction, before the hash chain) and exports from it.

    ``process`` puts the call's attributes on the current server span, opens a span per
    credential event, records metrics, and returns the record with ``trace_id``/``span_id``.
    """

    def process(self, record: dict[str, Any]) -> dict[str, Any]: ...

    def shutdown(self) -> None:
        """Flush what is buffered (bounded in time) and stop exporting."""
