"""One in-memory OpenTelemetry pipeline for the in-process telemetry tests.

FastMCP finds its tracer through the global API, so the tracer provider is installed once per
test session. Spans go through the same ``ScrubbingExporter`` the server uses, with a redactor
the tests can register secrets with.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from scoped_mcp.redaction import Redactor
from scoped_mcp.telemetry.otel import OtelTelemetry
from scoped_mcp.telemetry.scrub import ScrubbingExporter


@dataclass
class Pipeline:
    """What the tests read: exported spans, metrics, and the redactor behind the exporter."""

    spans: InMemorySpanExporter
    redactor: Redactor
    tracer_provider: TracerProvider


@pytest.fixture(scope="session")
def pipeline() -> Pipeline:
    """The session's global tracer provider, exporting to memory through the scrubber."""
    memory = InMemorySpanExporter()
    redactor = Redactor()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingExporter(memory, redactor)))
    trace.set_tracer_provider(provider)
    return Pipeline(memory, redactor, provider)


@dataclass
class Harness:
    """A fresh telemetry instance with its own metric reader; the span list starts empty."""

    telemetry: OtelTelemetry
    metrics: InMemoryMetricReader
    pipeline: Pipeline


@pytest.fixture
def harness(pipeline: Pipeline) -> Iterator[Harness]:
    """Telemetry as the server builds it, but exporting to memory."""
    pipeline.spans.clear()
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    telemetry = OtelTelemetry(tracer_provider=pipeline.tracer_provider, meter_provider=meters)
    yield Harness(telemetry, reader, pipeline)
    meters.shutdown()
