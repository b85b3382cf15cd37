"""Span and metric content, in-process with the SDK's in-memory exporter and metric reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastmcp import Client
from fastmcp.exceptions import ToolError
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from scoped_mcp import server
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import load
from tests.telemetry.conftest import Harness

pytestmark = pytest.mark.anyio
AGENT = AgentContext("tel-01", "research")
SECRET = "hunter2-CREDENTIAL-VALUE-7731"
ARG_VALUES = ("notes-ARGVALUE-93.txt", "../ESCAPE-ARGVALUE-11")


def _runtime(tmp_path: Path, harness: Harness) -> server.Runtime:
    agent_dir = tmp_path / "data" / "agents" / AGENT.agent_id
    agent_dir.mkdir(parents=True)
    (agent_dir / ARG_VALUES[0]).write_text("hello")
    manifest = tmp_path / "m.yml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "agent_type": "research",
                "audit": {"path": "audit.jsonl"},
                "modules": {"filesystem": {"mode": "read", "config": {"base_path": "data"}}},
            }
        )
    )
    redactor = harness.pipeline.redactor
    redactor.add(SECRET)
    return server.build(load(manifest), AGENT, {}, redactor=redactor, telemetry=harness.telemetry)


async def _calls(runtime: server.Runtime) -> None:
    async with Client(runtime.mcp) as client:
        await client.call_tool("filesystem_read_file", {"path": ARG_VALUES[0]})
        with pytest.raises(ToolError):
            await client.call_tool("filesystem_read_file", {"path": ARG_VALUES[1]})
        with pytest.raises(ToolError):
            await client.call_tool("filesystem_write_file", {"path": "x", "content": "y"})


def _server_spans(harness: Harness) -> list[ReadableSpan]:
    spans = harness.pipeline.spans.get_finished_spans()
    return [s for s in spans if s.kind == SpanKind.SERVER and s.name.startswith("tools/call")]


def _audit(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_attributes_go_on_fastmcps_server_span(tmp_path: Path, harness: Harness) -> None:
    """Each call has exactly one SERVER span (FastMCP's), carrying our identity and outcome."""
    runtime = _runtime(tmp_path, harness)
    await _calls(runtime)
    spans = _server_spans(harness)
    assert [s.name for s in spans] == [
        "tools/call filesystem_read_file",
        "tools/call filesystem_read_file",
        "tools/call filesystem_write_file",
    ]
    ok, denied, unknown = (dict(s.attributes or {}) for s in spans)
    assert ok["scoped_mcp.agent.id"] == "tel-01"
    assert ok["scoped_mcp.agent.type"] == "research"
    assert (ok["scoped_mcp.module"], ok["scoped_mcp.tool"]) == (
        "filesystem",
        "filesystem_read_file",
    )
    assert (ok["scoped_mcp.tool.mode"], ok["scoped_mcp.outcome"]) == ("read", "ok")
    assert "scoped_mcp.error.type" not in ok
    assert denied["scoped_mcp.outcome"] == "denied"
    assert denied["scoped_mcp.error.type"] == "ScopeViolation"
    assert (unknown["scoped_mcp.outcome"], unknown["scoped_mcp.error.type"]) == (
        "denied",
        "UnknownTool",
    )
    assert spans[1].status.status_code == StatusCode.ERROR
    assert spans[1].status.description is None


async def test_audit_records_carry_the_span_ids(tmp_path: Path, harness: Harness) -> None:
    """Every tool_call record names the trace and span its call was exported under."""
    runtime = _runtime(tmp_path, harness)
    await _calls(runtime)
    calls = [r for r in _audit(tmp_path) if r["event"] == "tool_call"]
    spans = _server_spans(harness)
    assert [(r["trace_id"], r["span_id"]) for r in calls] == [
        (f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}") for s in spans
    ]


async def test_no_attribute_holds_an_argument_or_a_secret(tmp_path: Path, harness: Harness) -> None:
    """Nothing exported (attributes, events, status, names) contains an argument value or a
    registered credential value, even when an error message or a record field held one."""
    runtime = _runtime(tmp_path, harness)
    await _calls(runtime)
    runtime.audit.record(
        "credential", action="failed", key=["API_TOKEN"], backend="env", source="env:API_TOKEN",
        status="denied", error=f"backend said {SECRET}",
    )  # fmt: skip
    exported = "\n".join(_dump(s) for s in harness.pipeline.spans.get_finished_spans())
    assert "filesystem_read_file" in exported
    for value in (*ARG_VALUES, "ARGVALUE", SECRET):
        assert value not in exported


def _dump(span: ReadableSpan) -> str:
    return json.dumps(
        {
            "name": span.name,
            "attributes": dict(span.attributes or {}),
            "events": [(e.name, dict(e.attributes or {})) for e in span.events],
            "status": span.status.description,
        },
        default=str,
    )


async def test_credential_events_are_spans(harness: Harness, tmp_path: Path) -> None:
    """Each credential event is a span with key names, backend and lease id, never a value."""
    runtime = _runtime(tmp_path, harness)
    lease = {"lease": "database/creds/r/…f3K9aQ", "lease_ttl": 300.0, "renewable": True}
    common = {"key": ["PG_PASSWORD", "PG_USER"], "backend": "vault-dynamic",
              "source": "vault-dynamic:database/creds/r"}  # fmt: skip
    for action in ("issued", "renewed", "revoked"):
        runtime.audit.record("credential", action=action, **common, **lease)
    runtime.audit.record("credential", action="failed", **common, status="unreachable")
    spans = [s for s in harness.pipeline.spans.get_finished_spans() if s.name.startswith("cred")]
    assert [s.name for s in spans] == [
        "credential issued",
        "credential renewed",
        "credential revoked",
        "credential failed",
    ]
    issued = dict(spans[0].attributes or {})
    assert list(issued["scoped_mcp.credential.keys"]) == ["PG_PASSWORD", "PG_USER"]
    assert issued["scoped_mcp.credential.backend"] == "vault-dynamic"
    assert issued["scoped_mcp.credential.lease"] == "database/creds/r/…f3K9aQ"
    assert issued["scoped_mcp.agent.id"] == "tel-01"
    assert spans[3].status.status_code == StatusCode.ERROR
    assert dict(spans[3].attributes or {})["scoped_mcp.error.type"] == "unreachable"
    records = [r for r in _audit(tmp_path) if r["event"] == "credential"]
    assert [r["span_id"] for r in records] == [f"{s.context.span_id:016x}" for s in spans]


def _points(harness: Harness) -> dict[str, list[Any]]:
    data = harness.metrics.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = list(metric.data.data_points)
    return found


async def test_metrics_count_calls_errors_denials_and_durations(
    tmp_path: Path, harness: Harness
) -> None:
    """Three calls: three counted, two denials, no errors, three durations, labelled by tool."""
    runtime = _runtime(tmp_path, harness)
    await _calls(runtime)
    points = _points(harness)
    assert sum(p.value for p in points["scoped_mcp.tool.calls"]) == 3
    assert sum(p.value for p in points["scoped_mcp.tool.denials"]) == 2
    assert "scoped_mcp.tool.errors" not in points
    assert sum(p.count for p in points["scoped_mcp.tool.duration"]) == 3
    labels = {tuple(sorted(dict(p.attributes).items())) for p in points["scoped_mcp.tool.calls"]}
    assert (
        ("mode", "read"),
        ("module", "filesystem"),
        ("outcome", "ok"),
        ("tool", "filesystem_read_file"),
    ) in labels


async def test_active_leases_follow_issue_rotate_and_revoke(
    tmp_path: Path, harness: Harness
) -> None:
    """The active-lease gauge counts distinct leases issued or rotated in and not yet revoked."""
    runtime = _runtime(tmp_path, harness)

    def event(action: str, lease: str) -> None:
        runtime.audit.record("credential", action=action, key=["K"], backend="vault-dynamic",
                             source="vault-dynamic:x", lease=lease)  # fmt: skip

    def active() -> int:
        return int(sum(p.value for p in _points(harness)["scoped_mcp.credential.leases.active"]))

    event("issued", "a")
    event("renewed", "a")
    assert active() == 1
    event("rotated", "b")
    assert active() == 2
    event("revoked", "a")
    event("revoked", "a")
    assert active() == 1
