"""The real stdio server: exports over OTLP/HTTP when configured, imports no SDK when not."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scoped_mcp.testing.harness import write_manifest
from tests.contract_support import INITIALIZED, call, child_env, initialize
from tests.support import running_server
from tests.telemetry.otlp_receiver import Received, attributes, otlp_receiver

TOKEN = "tok-SECRET-VALUE-5150-xyz"
ARGUMENT = "echo-ARGUMENT-VALUE-8086"
MANIFEST = {
    "agent_type": "observed",
    "modules": {
        "probe": {"type": "custom_modules.probe:ProbeModule"},
        "vaulted": {"type": "credential_modules.vaulted:VaultedModule"},
    },
}
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _manifest(tmp_path: Path, extra: dict[str, object] | None = None) -> Path:
    path = tmp_path / "m.yml"
    write_manifest(path, {**MANIFEST, **(extra or {})})
    return path


def _wait_for(received: Received, names: set[str], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if names <= {span.name for span in received.spans()}:
            return
        time.sleep(0.05)
    raise AssertionError(f"spans not received: {names - {s.name for s in received.spans()}}")


@pytest.mark.anyio
@pytest.mark.stdio
@pytest.mark.parametrize("configured_by", ["environment", "manifest"])
async def test_spans_arrive_at_an_otlp_receiver(tmp_path: Path, configured_by: str) -> None:
    """Over OTLP/HTTP protobuf the receiver gets the tool-call SERVER span with our attributes,
    a credential span, metrics, and the audit records name those spans; no value leaks. Same
    with the standard variables or with the manifest's telemetry block."""
    with otlp_receiver() as (endpoint, received):
        env = {
            "PYTHONPATH": str(FIXTURES),
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
            "API_TOKEN": TOKEN,
        }
        extra: dict[str, object] = {}
        if configured_by == "environment":
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
            env["OTEL_SERVICE_NAME"] = "scoped-mcp-e2e"
        else:
            extra["telemetry"] = {"endpoint": endpoint, "service_name": "scoped-mcp-e2e"}
        home = tmp_path / "home"
        manifest = _manifest(tmp_path, extra)
        async with running_server(
            manifest, agent_id="obs-01", agent_type="observed", extra_env=env, home=home
        ) as server:
            assert await server.call("probe_echo", {"text": ARGUMENT}) is not None
            assert len(await server.call("vaulted_token_digest", {})) == 64
            audit_path = server.audit_path
        _wait_for(received, {"tools/call probe_echo", "credential fetched"})
    spans = {span.name: span for span in received.spans()}
    echo = attributes(spans["tools/call probe_echo"])
    assert echo["scoped_mcp.agent.id"] == "obs-01"
    assert echo["scoped_mcp.agent.type"] == "observed"
    assert (echo["scoped_mcp.module"], echo["scoped_mcp.tool"]) == ("probe", "probe_echo")
    assert (echo["scoped_mcp.tool.mode"], echo["scoped_mcp.outcome"]) == ("read", "ok")
    fetched = attributes(spans["credential fetched"])
    assert fetched["scoped_mcp.credential.keys"] == ["API_TOKEN"]
    assert fetched["scoped_mcp.credential.backend"] == "env"
    digest = spans["tools/call vaulted_token_digest"]
    assert spans["credential fetched"].trace_id == digest.trace_id
    resource = attributes(received.traces[0].resource_spans[0].resource)
    assert resource["service.name"] == "scoped-mcp-e2e"
    assert received.content_types == {"application/x-protobuf"}
    assert {"scoped_mcp.tool.calls", "scoped_mcp.tool.duration"} <= received.metric_names()
    everything = "".join(str(request) for request in [*received.traces, *received.metrics])
    assert ARGUMENT not in everything
    assert TOKEN not in everything
    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    [echo_record] = [
        r for r in records if r.get("tool") == "probe_echo" and r["event"] == "tool_call"
    ]
    assert echo_record["trace_id"] == spans["tools/call probe_echo"].trace_id.hex()
    assert echo_record["span_id"] == spans["tools/call probe_echo"].span_id.hex()


PROBE = """
import sys
from scoped_mcp.cli import main
code = main(sys.argv[1:])
prefixes = ("opentelemetry.sdk", "opentelemetry.exporter")
loaded = sorted(m for m in sys.modules if m.startswith(prefixes))
sys.stderr.write("\\nLOADED=" + ",".join(loaded) + "\\n")
sys.exit(code)
"""


def _loaded_sdk_modules(tmp_path: Path, env: dict[str, str]) -> list[str]:
    messages = [initialize(), INITIALIZED, call(2, "probe_echo", text="x")]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "--manifest", str(_manifest(tmp_path))],
        input="".join(json.dumps(m) + "\n" for m in messages),
        env=child_env(tmp_path / "home", AGENT_ID="obs-01", AGENT_TYPE="observed", **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [line] = [x for x in done.stderr.splitlines() if x.startswith("LOADED=")]
    return [m for m in line.removeprefix("LOADED=").split(",") if m]


def test_no_sdk_is_imported_when_telemetry_is_off(tmp_path: Path) -> None:
    """Without OTEL_* variables or a telemetry block, no OpenTelemetry SDK or exporter module
    is ever imported by the server process."""
    assert _loaded_sdk_modules(tmp_path, {"API_TOKEN": TOKEN}) == []


def test_sdk_is_imported_when_an_endpoint_is_set(tmp_path: Path) -> None:
    """The same probe sees the SDK and the OTLP/HTTP exporter once an endpoint is configured."""
    env = {"API_TOKEN": TOKEN, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    env["OTEL_EXPORTER_OTLP_TIMEOUT"] = "1"
    loaded = _loaded_sdk_modules(tmp_path, env)
    assert "opentelemetry.sdk.trace" in loaded
    assert any(m.startswith("opentelemetry.exporter.otlp.proto.http") for m in loaded)


def test_unreachable_collector_does_not_hold_up_shutdown(tmp_path: Path) -> None:
    """With nothing listening at the endpoint, the server still exits promptly after stdin
    closes: the final flush is abandoned after its few-second budget."""
    env = {
        "API_TOKEN": TOKEN,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "30",  # the exporter alone would retry for 30 s
    }
    began = time.monotonic()
    assert "opentelemetry.sdk.trace" in _loaded_sdk_modules(tmp_path, env)
    assert time.monotonic() - began < 15
