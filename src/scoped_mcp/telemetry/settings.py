"""Whether telemetry is on, and how it exports, from the manifest and ``OTEL_*`` (no OTel import).

On when the manifest has a ``telemetry:`` block (and it does not say ``enabled: false``) or when
any of the standard exporter variables below is set; ``OTEL_SDK_DISABLED=true`` turns it off.
The standard variables win over the manifest for the same setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scoped_mcp.errors import ConfigError

if TYPE_CHECKING:
    from scoped_mcp.identity import AgentContext
    from scoped_mcp.manifest import TelemetrySpec
    from scoped_mcp.redaction import Redactor
    from scoped_mcp.telemetry.interface import Telemetry

TRIGGERS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
)
EXPORTERS = ("otlp", "console", "none")


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """The resolved configuration; ``endpoint`` is None when the ``OTEL_*`` variables name it."""

    traces: str  # otlp, console or none
    metrics: str
    endpoint: str | None
    service_name: str


def resolve(spec: TelemetrySpec | None, environ: Mapping[str, str]) -> TelemetrySettings | None:
    """The settings, or None when telemetry is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if spec is not None and not spec.enabled:
        return None
    if spec is None and not any(environ.get(name) for name in TRIGGERS):
        return None
    protocol = environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if protocol != "http/protobuf":
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported",
            fix="use http/protobuf (the collector's OTLP/HTTP port, usually 4318)",
        )
    traces = _exporter(environ, "OTEL_TRACES_EXPORTER", spec is None or spec.traces)
    metrics = _exporter(environ, "OTEL_METRICS_EXPORTER", spec is None or spec.metrics)
    if traces == metrics == "none":
        return None
    env_endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    endpoint = None if env_endpoint else (spec.endpoint if spec is not None else None)
    service = environ.get("OTEL_SERVICE_NAME") or (
        spec.service_name if spec is not None else "scoped-mcp"
    )
    return TelemetrySettings(traces, metrics, endpoint, service)


def _exporter(environ: Mapping[str, str], name: str, wanted: bool) -> str:
    value = environ.get(name, "").strip().lower() or ("otlp" if wanted else "none")
    if value not in EXPORTERS:
        raise ConfigError(
            f"{name}={value!r} is not supported", fix=f"use one of {', '.join(EXPORTERS)}"
        )
    return value


def configure(
    spec: TelemetrySpec | None,
    environ: Mapping[str, str],
    agent_ctx: AgentContext,
    redactor: Redactor,
) -> Telemetry | None:
    """Start exporting if configured; None (and no OpenTelemetry SDK import) otherwise."""
    settings = resolve(spec, environ)
    if settings is None:
        return None
    try:
        from scoped_mcp.telemetry.otel import start
    except ImportError as exc:
        raise ConfigError(
            f"telemetry is configured but the OpenTelemetry SDK is not installed ({exc.name})",
            fix="pip install 'scoped-mcp[otel]', or unset the OTEL_* variables / the manifest's "
            "telemetry block",
        ) from None
    return start(settings, agent_ctx, redactor)
