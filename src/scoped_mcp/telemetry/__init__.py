"""OpenTelemetry traces and metrics, loaded only when configured (docs/observability.md).

``settings.py`` decides from the manifest's ``telemetry:`` block and the standard ``OTEL_*``
variables whether telemetry is on, without importing OpenTelemetry. Only when it is on does
``otel.py`` import the SDK and the OTLP/HTTP exporter (the ``otel`` extra).
"""
