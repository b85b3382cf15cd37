"""Hostile input from the agent and from upstreams, driven through the real call pipeline.

Each test pins one rule: a bad argument or a malformed upstream answer gives the agent a short,
specific refusal (never "internal error"), leaves an audit record, and touches nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastmcp import Client
from fastmcp.exceptions import ToolError

from scoped_mcp import manifest as manifest_mod
from scoped_mcp.identity import AgentContext
from scoped_mcp.server import Runtime, build, start_modules, stop_modules
from tests.services.fake_http import Recorded, Reply, serve_http

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def runtime_for(
    tmp_path: Path, key: str, config: Mapping[str, Any], env: Mapping[str, str], mode: str
) -> AsyncIterator[Runtime]:
    """The whole server for one module (manifest, broker, audit, FastMCP) without a subprocess."""
    entry: dict[str, Any] = {"config": dict(config)}
    if mode:
        entry["mode"] = mode
    data = {
        "agent_type": "research",
        "modules": {key: entry},
        "audit": {"path": str(tmp_path / "audit.jsonl")},
    }
    path = tmp_path / "manifest.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    runtime = build(manifest_mod.load(path), AgentContext("agent-01", "research"), dict(env))
    await start_modules(runtime)
    try:
        yield runtime
    finally:
        await stop_modules(runtime)


def audit_records(tmp_path: Path, tool: str) -> list[dict[str, Any]]:
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line]
    return [r for r in records if r.get("event") == "tool_call" and r.get("tool") == tool]


async def answer(runtime: Runtime, tool: str, arguments: dict[str, Any]) -> Any:
    """Call ``tool`` over MCP and return its data."""
    async with Client(runtime.mcp) as client:
        return (await client.call_tool(tool, arguments)).data


async def refusal(runtime: Runtime, tool: str, arguments: dict[str, Any]) -> str:
    """Call ``tool`` over MCP; it must fail with a specific message, not an internal error."""
    async with Client(runtime.mcp) as client:
        with pytest.raises(ToolError) as caught:
            await client.call_tool(tool, arguments)
    message = str(caught.value)
    assert "internal error" not in message, message
    assert f"Error calling tool '{tool}'" not in message, message
    return message


# -- sqlite ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**300])
async def test_sqlite_integer_param_out_of_range_is_refused(tmp_path: Path, value: int) -> None:
    """An integer param SQLite cannot store (beyond 64 bits) is an invalid argument."""
    config = {"db_dir": str(tmp_path / "db")}
    async with runtime_for(tmp_path, "sqlite", config, {}, "write") as runtime:
        message = await refusal(runtime, "sqlite_query", {"sql": "SELECT ?", "params": [value]})
        assert "64-bit" in message
        await refusal(runtime, "sqlite_execute", {"sql": "SELECT ?", "params": [value]})
    outcomes = [r["outcome"] for r in audit_records(tmp_path, "sqlite_query")]
    assert outcomes == ["denied"]


# -- answers from a hostile HTTP upstream ------------------------------------------------------


def deep_json(request: Recorded) -> Reply:
    depth = int(request.path.rsplit("/", 1)[1])
    return Reply(200, b"[" * depth + b"]" * depth, headers={"Content-Type": "application/json"})


def surrogate_json(request: Recorded) -> Reply:
    return Reply(200, b'{"a": "\\ud800"}', headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("depth", [300, 5000])
async def test_http_proxy_deeply_nested_json_answer_comes_back_as_text(
    tmp_path: Path, depth: int
) -> None:
    """JSON nested too deep to return as JSON is handed back as its text, and audited "ok"."""
    with serve_http(deep_json) as server:
        config = {
            "services": {"s": {"base_url": server.url, "allow_private_networks": True}},
            "max_response_bytes": 100_000,
        }
        async with runtime_for(tmp_path, "http_proxy", config, {}, "read") as runtime:
            arguments = {"service": "s", "path": f"/d/{depth}"}
            result = await answer(runtime, "http_proxy_get", arguments)
    assert result["body"] == "[" * depth + "]" * depth
    assert "json" not in result
    assert [r["outcome"] for r in audit_records(tmp_path, "http_proxy_get")] == ["ok"]


async def test_http_proxy_json_answer_with_a_lone_surrogate_comes_back_as_text(
    tmp_path: Path,
) -> None:
    """A JSON answer whose string escapes a lone surrogate cannot be re-encoded: sent as text."""
    with serve_http(surrogate_json) as server:
        config = {"services": {"s": {"base_url": server.url, "allow_private_networks": True}}}
        async with runtime_for(tmp_path, "http_proxy", config, {}, "read") as runtime:
            result = await answer(runtime, "http_proxy_get", {"service": "s", "path": "/x"})
    assert result["body"] == '{"a": "\\ud800"}'


# -- influxdb: times and answers ---------------------------------------------------------------

INFLUX_TOKEN = "influx_token_review_0123456789abcdef"
LATE_WITH_OFFSET = "9999-12-31T23:59-01:00"  # the year 10000 in UTC
INFLUX_CONFIG = {"org": "homelab", "buckets": ["metrics"], "write_buckets": ["metrics"]}


def influx_env(url: str) -> dict[str, str]:
    return {"INFLUXDB_URL": url, "INFLUXDB_TOKEN": INFLUX_TOKEN}


def never_called(request: Recorded) -> Reply:
    raise AssertionError(f"the refused call reached InfluxDB: {request.method} {request.path}")


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("influxdb_delete_points", {"measurement": "m", "start": "-999999y"}),
        ("influxdb_delete_points", {"measurement": "m", "start": "-1h", "stop": "999999w"}),
        ("influxdb_delete_points", {"measurement": "m", "start": "0001-01-01T00:00:00+01:00"}),
        (
            "influxdb_write_points",
            {"points": [{"measurement": "m", "fields": {"v": 1}, "time": "-999999y"}]},
        ),
        (
            "influxdb_write_points",
            {"points": [{"measurement": "m", "fields": {"v": 1}, "time": LATE_WITH_OFFSET}]},
        ),
    ],
)
async def test_influxdb_times_out_of_range_are_refused(
    tmp_path: Path, tool: str, arguments: dict[str, Any]
) -> None:
    """A time the calendar cannot hold is an invalid argument and nothing is sent."""
    with serve_http(never_called) as server:
        env = influx_env(server.url)
        async with runtime_for(tmp_path, "influxdb", INFLUX_CONFIG, env, "write") as runtime:
            message = await refusal(runtime, tool, {"bucket": "metrics", **arguments})
    assert "time" in message or "start" in message or "stop" in message
    assert [r["outcome"] for r in audit_records(tmp_path, tool)] == ["denied"]


async def test_influxdb_delete_with_a_year_before_1000_keeps_rfc3339(tmp_path: Path) -> None:
    """A start before the year 1000 is sent as RFC 3339 (four-digit year), not '1-01-01...'."""
    seen: list[dict[str, Any]] = []

    def record(request: Recorded) -> Reply:
        seen.append(request.json())
        return Reply(204, b"")

    with serve_http(record) as server:
        env = influx_env(server.url)
        async with runtime_for(tmp_path, "influxdb", INFLUX_CONFIG, env, "write") as runtime:
            arguments = {"bucket": "metrics", "measurement": "m", "start": "0001-01-01T00:00:00Z"}
            await answer(runtime, "influxdb_delete_points", arguments)
    assert seen[0]["start"] == "0001-01-01T00:00:00.000000Z"


def huge_csv_field(request: Recorded) -> Reply:
    text = "result,table,_value\n,0," + "x" * 200_000 + "\n"
    return Reply(200, text, headers={"Content-Type": "text/csv"})


async def test_influxdb_unparseable_query_answer_is_a_backend_error(tmp_path: Path) -> None:
    """A CSV answer the parser refuses (a field over its size limit) fails the call cleanly."""
    with serve_http(huge_csv_field) as server:
        config = {**INFLUX_CONFIG, "max_response_bytes": 1_000_000}
        env = influx_env(server.url)
        async with runtime_for(tmp_path, "influxdb", config, env, "read") as runtime:
            message = await refusal(runtime, "influxdb_query", {"bucket": "metrics"})
    assert "influxdb" in message
    assert [r["outcome"] for r in audit_records(tmp_path, "influxdb_query")] == ["error"]


# -- smtp: recipient routing tricks ------------------------------------------------------------


@pytest.mark.parametrize(
    "recipient", ["victim%evil.example@corp.example", "evil.example!victim@corp.example"]
)
async def test_smtp_source_routed_recipient_is_refused(tmp_path: Path, recipient: str) -> None:
    """'%' and '!' routing in a local part (which MTAs such as Postfix rewrite by default) cannot
    carry mail for an '@domain' allowlist entry to another domain."""
    config = {
        "sender": "agent@corp.example",
        "allowed_recipients": ["@corp.example"],
        "tls": "none",
    }
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": "9", "SMTP_USER": "u", "SMTP_PASSWORD": "pw12"}
    async with runtime_for(tmp_path, "smtp", config, env, "") as runtime:
        arguments = {"to": [recipient], "subject": "s", "body": "b"}
        message = await refusal(runtime, "smtp_send", arguments)
    assert "recipient" in message
    assert [r["outcome"] for r in audit_records(tmp_path, "smtp_send")] == ["denied"]
