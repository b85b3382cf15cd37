"""The last layer before spans leave the process: no exception text, no secrets.

FastMCP records the exception of a failed call on its server span (message, stack trace, status
description). The message is what the agent was shown and may quote what it sent, so the exporter
keeps only the exception's type, drops the status description, and scrubs every remaining string
with the redactor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status
from opentelemetry.util.types import AttributeValue

from scoped_mcp.redaction import Redactor

_EXCEPTION_KEEP = {"exception.type", "exception.escaped"}


class ScrubbingExporter(SpanExporter):
    """Wraps the real exporter; every span passes through ``clean`` first."""

    def __init__(self, inner: SpanExporter, redactor: Redactor) -> None:
        self._inner = inner
        self._redactor = redactor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self.clean(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def clean(self, span: ReadableSpan) -> ReadableSpan:
        """A copy of ``span`` without exception text or status description, strings scrubbed."""
        return ReadableSpan(
            name=self._redactor.scrub(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self._attributes(span.attributes or {}),
            events=[self._event(event) for event in span.events],
            links=span.links,
            kind=span.kind,
            status=Status(span.status.status_code),
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def _event(self, event: Event) -> Event:
        attributes: Mapping[str, Any] = event.attributes or {}
        if event.name == "exception":
            attributes = {k: v for k, v in attributes.items() if k in _EXCEPTION_KEEP}
        return Event(event.name, self._attributes(attributes), event.timestamp)

    def _attributes(self, attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
        return {key: self._value(value) for key, value in attributes.items()}

    def _value(self, value: Any) -> AttributeValue:
        if isinstance(value, str):
            return self._redactor.scrub(value)
        if isinstance(value, tuple | list):
            return [self._redactor.scrub(v) if isinstance(v, str) else v for v in value]
        result: AttributeValue = value
        return result
