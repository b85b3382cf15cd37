"""When telemetry is on, and what the standard variables and the manifest block decide."""

from __future__ import annotations

import pytest

from scoped_mcp.errors import ConfigError
from scoped_mcp.manifest import TelemetrySpec
from scoped_mcp.telemetry.settings import resolve


def test_off_when_nothing_is_configured() -> None:
    """No telemetry block and no exporter variable: telemetry is off."""
    assert resolve(None, {"OTEL_SERVICE_NAME": "x", "PATH": "/bin"}) is None


def test_on_with_the_standard_endpoint_variable() -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT alone turns traces and metrics on, endpoint left to the SDK."""
    found = resolve(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert found is not None
    assert (found.traces, found.metrics, found.endpoint) == ("otlp", "otlp", None)
    assert found.service_name == "scoped-mcp"


def test_manifest_block_turns_it_on_and_env_wins() -> None:
    """A telemetry block is enough; OTEL_* variables override its settings."""
    spec = TelemetrySpec(endpoint="http://127.0.0.1:4318", service_name="agents", metrics=False)
    found = resolve(spec, {})
    assert found is not None
    assert (found.endpoint, found.service_name, found.metrics) == (
        "http://127.0.0.1:4318",
        "agents",
        "none",
    )
    env = {"OTEL_SERVICE_NAME": "ops", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    found = resolve(spec, env)
    assert found is not None
    assert (found.endpoint, found.service_name) == (None, "ops")


@pytest.mark.parametrize(
    ("spec", "env"),
    [
        (TelemetrySpec(enabled=False), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}),
        (TelemetrySpec(), {"OTEL_SDK_DISABLED": "true"}),
        (None, {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}),
    ],
)
def test_explicitly_off(spec: TelemetrySpec | None, env: dict[str, str]) -> None:
    """enabled: false, OTEL_SDK_DISABLED=true, or both exporters 'none' turn telemetry off."""
    assert resolve(spec, env) is None


def test_unsupported_protocol_is_a_config_error() -> None:
    """gRPC is not bundled: asking for it is refused with the fix, not silently ignored."""
    with pytest.raises(ConfigError, match="not supported"):
        resolve(TelemetrySpec(), {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
