"""The OpenTelemetry SDK wiring: providers, OTLP/HTTP exporters, and the audit-record processor.

Imported only when telemetry is configured. Tool calls are not given a span of their own: FastMCP
already opens one SERVER span per request (``tools/call <tool>``), and ``process`` puts our
attributes on it. The tracer provider is installed globally because FastMCP's tracer is looked
up through the global API; everything else is held by the ``OtelTelemetry`` instance.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

from scoped_mcp import __version__
from scoped_mcp.audit import records
from scoped_mcp.identity import AgentContext
from scoped_mcp.redaction import Redactor
from scoped_mcp.telemetry import attributes as attrs
from scoped_mcp.telemetry.scrub import ScrubbingExporter
from scoped_mcp.telemetry.settings import TelemetrySettings

SHUTDOWN_SECONDS = 3.0
SCOPE = "scoped_mcp"
LEASE_OPEN = {"issued", "rotated"}


class OtelTelemetry:
    """Turns audit records into span attributes, credential spans and metrics."""

    def __init__(
        self, *, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._tracer = tracer_provider.get_tracer(SCOPE, __version__) if tracer_provider else None
        self._leases: set[str] = set()
        self._lock = threading.Lock()
        meter = meter_provider.get_meter(SCOPE, __version__) if meter_provider else None
        self._metrics = _Metrics(meter) if meter is not None else None

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        """The audit-pipeline step: export what the record says, stamp the trace ids on it."""
        event = record.get("event")
        if event == records.CREDENTIAL:
            context = self._credential(record)
        else:
            span = trace.get_current_span()
            if event == records.TOOL_CALL:
                self._tool_call(span, record)
            context = span.get_span_context()
        if context is None or not context.is_valid:
            return record
        return {
            **record,
            "trace_id": trace.format_trace_id(context.trace_id),
            "span_id": trace.format_span_id(context.span_id),
        }

    def _tool_call(self, span: trace.Span, record: dict[str, Any]) -> None:
        if span.is_recording():
            span.set_attributes(attrs.tool_call(record))
        if self._metrics is not None:
            self._metrics.tool_call(record)

    def _credential(self, record: dict[str, Any]) -> SpanContext | None:
        self._count_lease(record)
        if self._metrics is not None:
            self._metrics.credential(record)
        if self._tracer is None:
            return None
        action = str(record.get("action", "event"))
        span = self._tracer.start_span(
            f"credential {action}",
            kind=SpanKind.INTERNAL,
            attributes={**attrs.identity(record), **attrs.pick(record, attrs.CREDENTIAL_FIELDS)},
        )
        if action == "failed":
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        return span.get_span_context()

    def _count_lease(self, record: dict[str, Any]) -> None:
        lease, action = record.get("lease"), record.get("action")
        if not isinstance(lease, str) or self._metrics is None:
            return
        with self._lock:
            if action in LEASE_OPEN and lease not in self._leases:
                self._leases.add(lease)
                self._metrics.active_leases.add(1)
            elif action == "revoked" and lease in self._leases:
                self._leases.discard(lease)
                self._metrics.active_leases.add(-1)

    def shutdown(self) -> None:
        """Flush and stop both providers, waiting at most ``SHUTDOWN_SECONDS`` in all.

        An unreachable collector makes the exporter retry for its whole timeout; the agent host
        that closed the session must not wait for that, so the flush runs in a daemon thread
        that is abandoned when the time is up (what it still held is lost).
        """
        worker = threading.Thread(target=self._stop_providers, name="otel-shutdown", daemon=True)
        worker.start()
        worker.join(SHUTDOWN_SECONDS)

    def _stop_providers(self) -> None:
        for provider in (self._tracer_provider, self._meter_provider):
            if provider is not None:
                provider.shutdown()


class _Metrics:
    """The instruments; names and units in docs/observability.md."""

    def __init__(self, meter: Any) -> None:
        self.calls = meter.create_counter("scoped_mcp.tool.calls", unit="{call}")
        self.errors = meter.create_counter("scoped_mcp.tool.errors", unit="{call}")
        self.denials = meter.create_counter("scoped_mcp.tool.denials", unit="{call}")
        self.duration = meter.create_histogram("scoped_mcp.tool.duration", unit="ms")
        self.credential_events = meter.create_counter(
            "scoped_mcp.credential.events", unit="{event}"
        )
        self.active_leases = meter.create_up_down_counter(
            "scoped_mcp.credential.leases.active", unit="{lease}"
        )

    def tool_call(self, record: dict[str, Any]) -> None:
        labels = attrs.metric_labels(record)
        self.calls.add(1, labels)
        outcome = record.get("outcome")
        if outcome == "error":
            self.errors.add(1, labels)
        elif outcome == "denied":
            self.denials.add(1, labels)
        duration = record.get("duration_ms")
        if isinstance(duration, int | float):
            self.duration.record(duration, labels)

    def credential(self, record: dict[str, Any]) -> None:
        labels = {"action": str(record.get("action")), "backend": str(record.get("backend"))}
        self.credential_events.add(1, labels)


def resource(settings: TelemetrySettings, agent_ctx: AgentContext) -> Resource:
    """service.name plus the agent; ``OTEL_RESOURCE_ATTRIBUTES`` is merged in by the SDK."""
    return Resource.create(
        {
            "service.name": settings.service_name,
            "service.version": __version__,
            "service.instance.id": agent_ctx.agent_id,
            "scoped_mcp.agent.id": agent_ctx.agent_id,
            "scoped_mcp.agent.type": agent_ctx.agent_type,
        }
    )


def start(
    settings: TelemetrySettings, agent_ctx: AgentContext, redactor: Redactor
) -> OtelTelemetry:
    """Build the providers the settings ask for and install the tracer provider globally."""
    res = resource(settings, agent_ctx)
    tracer_provider = None
    if settings.traces != "none":
        tracer_provider = TracerProvider(resource=res, shutdown_on_exit=False)
        exporter = ScrubbingExporter(_span_exporter(settings), redactor)
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)
    meter_provider = None
    if settings.metrics != "none":
        meter_provider = MeterProvider(
            resource=res, metric_readers=[_metric_reader(settings)], shutdown_on_exit=False
        )
    return OtelTelemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)


def _span_exporter(settings: TelemetrySettings) -> SpanExporter:
    if settings.traces == "console":
        return ConsoleSpanExporter(out=sys.stderr)  # stdout belongs to MCP
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=_signal_url(settings.endpoint, "traces"))


def _metric_reader(settings: TelemetrySettings) -> MetricReader:
    if settings.metrics == "console":
        return PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stderr))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=_signal_url(settings.endpoint, "metrics"))
    )


def _signal_url(base: str | None, signal: str) -> str | None:
    """The manifest's base URL plus ``/v1/{signal}``; None lets the SDK read ``OTEL_*``."""
    return None if base is None else f"{base.rstrip('/')}/v1/{signal}"
