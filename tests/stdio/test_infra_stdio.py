"""http_proxy, grafana and influxdb through the real server over stdio: registration by mode,
end-to-end calls to stateful fakes on 127.0.0.1, SSRF refusals audited as denied, agent isolation
across two server processes, and no credential in any result, error, stderr or audit line."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from tests.services.checks import assert_clean
from tests.services.fake_http import FakeHTTP, Recorded, Reply, serve_http
from tests.services.grafana import GrafanaService
from tests.services.influxdb import InfluxService

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]
PROXY_TOKEN = "tok_stdioproxysecret_0123456789"
GRAFANA_TOKEN = "glsa_stdiografanasecret_0123456789"
INFLUX_TOKEN = "influx_stdiosecret_0123456789abc"
READ_TOOLS = [
    "grafana_get_dashboard", "grafana_list_dashboards", "grafana_list_datasources",
    "grafana_query_datasource", "http_proxy_get", "influxdb_get_schema",
    "influxdb_list_measurements", "influxdb_query",
]  # fmt: skip
WRITE_TOOLS = [
    "grafana_create_alert_rule", "grafana_create_dashboard", "grafana_delete_dashboard",
    "grafana_update_dashboard", "http_proxy_delete", "http_proxy_post", "http_proxy_put",
    "influxdb_create_bucket", "influxdb_delete_points", "influxdb_write_points",
]  # fmt: skip


def echo_auth(request: Recorded) -> Reply:
    """A service that repeats the credential it received (redaction must catch it)."""
    return Reply(200, {"path": request.path, "saw": request.header("authorization")})


@contextmanager
def services() -> Iterator[dict[str, Any]]:
    influx = InfluxService(INFLUX_TOKEN)
    influx.buckets["metrics"] = [
        {"measurement": "docker_cpu", "tags": {"container": "web"}, "fields": {"usage": 94.0},
         "time": time.time_ns() - 60_000_000_000},
    ]  # fmt: skip
    influx.buckets["scratch"] = []
    grafana = GrafanaService(GRAFANA_TOKEN)
    with ExitStack() as stack:
        yield {
            "api": stack.enter_context(serve_http(echo_auth)),
            "grafana": stack.enter_context(serve_http(grafana)),
            "influx": stack.enter_context(serve_http(influx)),
            "grafana_state": grafana,
            "influx_state": influx,
        }


def manifest(running: dict[str, Any], mode: str) -> dict[str, Any]:
    api: FakeHTTP = running["api"]
    inventory = {
        "base_url": f"{api.url}/api",
        "paths": ["/v1"],
        "methods": ["GET", "POST"],
        "auth": {"key": "INVENTORY_TOKEN"},
        "allow_private_networks": True,
    }
    influx = {"org": "homelab", "buckets": ["metrics", "scratch"], "write_buckets": ["scratch"]}
    return {
        "agent_type": "ops",
        "modules": {
            "http_proxy": {"mode": mode, "config": {"services": {"inventory": inventory}}},
            "grafana": {"mode": mode, "config": {"datasources": ["prom"]}},
            "influxdb": {"mode": mode, "config": influx},
        },
    }


def credentials(running: dict[str, Any]) -> dict[str, str]:
    return {
        "INVENTORY_TOKEN": PROXY_TOKEN,
        "GRAFANA_URL": running["grafana"].url,
        "GRAFANA_SERVICE_ACCOUNT_TOKEN": GRAFANA_TOKEN,
        "INFLUXDB_URL": running["influx"].url,
        "INFLUXDB_TOKEN": INFLUX_TOKEN,
    }


async def test_three_module_workflow_over_stdio(write_manifest: Any, serve: Any) -> None:
    """The seed's workflow runs end to end: influxdb query, grafana dashboard in the agent's
    folder, http_proxy call; an echoed credential comes back redacted, SSRF attempts are denied
    and audited, and no secret reaches results, errors, stderr or the audit log."""
    with services() as running:
        env = credentials(running)
        path = write_manifest(manifest(running, "write"))
        async with serve(path, agent_id="ops-01", env=env) as server:
            assert await server.tool_names() == sorted(READ_TOOLS + WRITE_TOOLS)
            rows = await server.call("influxdb_query", {
                "bucket": "metrics",
                "filters": [{"field": "_measurement", "op": "==", "value": "docker_cpu"}],
            })  # fmt: skip
            dashboard = await server.call("grafana_create_dashboard", {
                "title": "Container Health", "panels": [{"title": "CPU by Container"}],
            })  # fmt: skip
            echoed = await server.call("http_proxy_get", {"service": "inventory", "path": "v1/x"})
            denied = [
                await server.error("http_proxy_get", {"service": "inventory", "path": p})
                for p in ("v1/../admin", "v1/%2e%2e/admin", "http://127.0.0.1:9/")
            ]
            records = server.audit_records()
            stderr = server.stderr()
    assert rows["rows"][0]["container"] == "web"
    assert dashboard["folder_uid"] == "agent-ops-01"
    assert running["grafana_state"].dashboards[dashboard["uid"]]["folderUid"] == "agent-ops-01"
    assert echoed["json"]["path"] == "/api/v1/x"
    assert PROXY_TOKEN not in echoed["json"]["saw"]
    assert all("path" in message or "URL" in message for message in denied)
    calls = [r for r in records if r.get("event") == "tool_call"]
    assert [r["outcome"] for r in calls[-3:]] == ["denied"] * 3
    secrets = [PROXY_TOKEN, GRAFANA_TOKEN, INFLUX_TOKEN]
    assert_clean(repr(rows) + repr(dashboard) + repr(echoed) + " ".join(denied), secrets)
    assert_clean(stderr, secrets)
    assert_clean(server.audit_path.read_text(), secrets)


async def test_read_mode_and_isolation_between_agent_processes(
    write_manifest: Any, serve: Any
) -> None:
    """In read mode only read tools exist; a dashboard and points written by agent-01's server
    are invisible to agent-02's server."""
    with services() as running:
        env = credentials(running)
        writer = write_manifest(manifest(running, "write"), "writer.yml")
        reader = write_manifest(manifest(running, "read"), "reader.yml")
        async with serve(writer, agent_id="agent-01", env=env) as server:
            made = await server.call("grafana_create_dashboard", {"title": "Mine"})
            await server.call("influxdb_write_points", {
                "bucket": "scratch", "points": [{"measurement": "cpu", "fields": {"v": 1}}],
            })  # fmt: skip
        async with serve(reader, agent_id="agent-02", env=env) as other:
            assert await other.tool_names() == READ_TOOLS
            listed = await other.call("grafana_list_dashboards")
            hidden = await other.error("grafana_get_dashboard", {"uid": made["uid"]})
            measurements = await other.call("influxdb_list_measurements", {"bucket": "scratch"})
            points = await other.call("influxdb_query", {"bucket": "scratch"})
    assert listed == []
    assert "not found" in hidden
    assert measurements == []
    assert points["rows"] == []
    assert [p["measurement"] for p in running["influx_state"].buckets["scratch"]] == [
        "agent_agent-01.cpu"
    ]
