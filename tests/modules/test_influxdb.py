"""InfluxModule against a stateful fake InfluxDB v2 on 127.0.0.1 (strict Flux subset): bucket
allowlists, per-agent measurement namespaces, injection-proof queries and writes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from scoped_mcp.errors import BackendError, InvalidArgument, ScopeViolation
from tests.services.checks import assert_clean, failure
from tests.services.fake_http import FakeHTTP, serve_http
from tests.services.harness import Built, built_module
from tests.services.influxdb import InfluxService

pytestmark = pytest.mark.anyio
TOKEN = "influx_token_secret_0123456789abcdef"
CONFIG: dict[str, Any] = {"org": "homelab", "buckets": ["metrics", "scratch"],
                          "write_buckets": ["scratch"]}  # fmt: skip
NOW = time.time_ns()


def seeded() -> InfluxService:
    """An InfluxDB with operator metrics and a scratch bucket."""
    service = InfluxService(TOKEN)
    service.buckets["metrics"] = [
        {"measurement": "docker_cpu", "tags": {"container": "web"}, "fields": {"usage": 94.0},
         "time": NOW - 60_000_000_000},
        {"measurement": "docker_cpu", "tags": {"container": "db"}, "fields": {"usage": 12.0},
         "time": NOW - 30_000_000_000},
        {"measurement": "disk", "tags": {"host": "nas"}, "fields": {"free": 10.0},
         "time": NOW - 30_000_000_000},
    ]  # fmt: skip
    service.buckets["scratch"] = []
    service.buckets["private"] = []
    return service


@asynccontextmanager
async def influx(
    tmp_path: Path, server: FakeHTTP, agent_id: str = "agent-01", **env: str
) -> AsyncIterator[Built]:
    (tmp_path / agent_id).mkdir(exist_ok=True)
    environ = {"INFLUXDB_URL": server.url, "INFLUXDB_TOKEN": TOKEN, **env}
    async with built_module(
        tmp_path / agent_id, "influxdb", CONFIG, environ, agent_id=agent_id
    ) as b:
        yield b


async def test_structured_query_as_in_the_workflow_example(tmp_path: Path) -> None:
    """The seed's query (filters on _measurement) returns the operator's rows, with the token
    as 'Token ...' and the org in the query string; the result holds neither secret."""
    service = seeded()
    with serve_http(service) as server:
        async with influx(tmp_path, server) as built:
            result = await built.module.query(
                "metrics",
                filters=[{"field": "_measurement", "op": "==", "value": "docker_cpu"},
                         {"field": "_value", "op": ">", "value": 50.0}],
            )  # fmt: skip
            averaged = await built.module.query(
                "metrics",
                filters=[{"field": "container", "op": "=~", "value": "^(web|db)$"}],
                aggregate={"every": "1h", "fn": "count"},
            )
    assert [(r["container"], r["_value"]) for r in result["rows"]] == [("web", "94.0")]
    assert sorted(r["_value"] for r in averaged["rows"]) == ["1", "1"]
    assert all(r.header("authorization") == f"Token {TOKEN}" for r in server.requests)
    assert all("org=homelab" in r.query for r in server.requests)
    assert_clean(repr(result), [TOKEN, server.url])


async def test_writes_land_in_the_agent_namespace_and_stay_private(tmp_path: Path) -> None:
    """Points are stored as agent_{id}.{name}; another agent cannot list, read, describe or
    delete them, while the writer can."""
    service = seeded()
    with serve_http(service) as server:
        async with influx(tmp_path, server, "agent-02") as other:
            wrote = await other.module.write_points(
                "scratch", [{"measurement": "cpu", "tags": {"host": "a"}, "fields": {"v": 1.5}}]
            )
            theirs = wrote["measurements"][0]
            own_view = await other.module.query("scratch")
        async with influx(tmp_path, server, "agent-01") as built:
            await built.module.write_points("scratch", [{"measurement": "cpu", "fields": {"v": 2}}])
            listed = await built.module.list_measurements("scratch")
            seen = await built.module.query("scratch")
            named = await built.module.query(
                "scratch", filters=[{"field": "_measurement", "op": "==", "value": theirs}]
            )
            await failure(built.module.get_schema("scratch", theirs), ScopeViolation)
            await failure(built.module.delete_points("scratch", theirs, "-1h"), ScopeViolation)
            await failure(
                built.module.write_points("scratch", [{"measurement": theirs, "fields": {"v": 9}}]),
                ScopeViolation,
            )
            await built.module.delete_points("scratch", "cpu", "-1h")
    assert theirs == "agent_agent-02.cpu"
    assert [r["_measurement"] for r in own_view["rows"]] == [theirs]
    assert listed == ["agent_agent-01.cpu"]
    assert {r["_measurement"] for r in seen["rows"]} == {"agent_agent-01.cpu"}
    assert named["rows"] == []
    assert [p["measurement"] for p in service.buckets["scratch"]] == [theirs]
    assert service.deletes[0]["predicate"] == '_measurement="agent_agent-01.cpu"'


async def test_bucket_allowlists(tmp_path: Path) -> None:
    """Reads only from buckets, writes and deletes only to write_buckets (or own buckets)."""
    with serve_http(seeded()) as server:
        async with influx(tmp_path, server) as built:
            await failure(built.module.query("private"), ScopeViolation)
            await failure(built.module.list_measurements("private"), ScopeViolation)
            point = [{"measurement": "m", "fields": {"v": 1}}]
            await failure(built.module.write_points("metrics", point), ScopeViolation)
            await failure(built.module.delete_points("metrics", "m", "-1h"), ScopeViolation)
    assert server.requests == []


async def test_create_bucket_is_namespaced_and_usable(tmp_path: Path) -> None:
    """create_bucket makes agent_{id}.{name} with capped retention; the agent may then write and
    read it, and another agent may not."""
    service = seeded()
    with serve_http(service) as server:
        async with influx(tmp_path, server) as built:
            made = await built.module.create_bucket("work", retention_days=3)
            await built.module.write_points(
                made["bucket"], [{"measurement": "x", "fields": {"v": 1}}]
            )
            rows = (await built.module.query(made["bucket"]))["rows"]
            await failure(built.module.create_bucket("big", retention_days=365), InvalidArgument)
            await failure(built.module.create_bucket("../x"), InvalidArgument)
        async with influx(tmp_path, server, "agent-02") as other:
            await failure(other.module.query(made["bucket"]), ScopeViolation)
    assert made["bucket"] == "agent_agent-01.work"
    assert [r["_measurement"] for r in rows] == ["agent_agent-01.x"]
    create = next(r for r in server.requests if r.path == "/api/v2/buckets").json()
    assert create["retentionRules"] == [{"type": "expire", "everySeconds": 3 * 86400}]


INJECTIONS = [
    'docker_cpu") or true or ("',
    'x" or r._measurement =~ /agent_agent-02/ or r._measurement == "',
    "x\\",
    'x\\") |> drop(columns: ["_value"]) //',
    "${token}",
    "a\nb",
]


@pytest.mark.parametrize("value", INJECTIONS)
async def test_filter_values_cannot_escape_their_literal(tmp_path: Path, value: str) -> None:
    """A filter value that tries to close its string and add Flux either is refused or matches
    nothing: it never widens the query (the fake parses the whole program strictly)."""
    service = seeded()
    service.buckets["metrics"].append(
        {"measurement": "agent_agent-02.cpu", "tags": {}, "fields": {"v": 1.0}, "time": NOW - 10}
    )
    with serve_http(service) as server:
        async with influx(tmp_path, server) as built:
            try:
                result = await built.module.query(
                    "metrics", filters=[{"field": "_measurement", "op": "==", "value": value}]
                )
            except InvalidArgument:
                return
    assert result["rows"] == []
    assert len(service.queries) == 1


@pytest.mark.parametrize(
    "arguments",
    [
        {"filters": [{"field": 'x"]) or (r["y', "op": "==", "value": "a"}]},
        {"filters": [{"field": "_measurement", "op": "or", "value": "a"}]},
        {"filters": [{"field": "host", "op": "=~", "value": 3}]},
        {"aggregate": {"every": "5m) |> yield(", "fn": "mean"}},
        {"aggregate": {"every": "5m", "fn": "map"}},
        {"start": "-1h) |> drop("},
        {"start": "yesterday"},
        {"limit": 10**9},
    ],
)
async def test_malformed_structured_input_is_refused(
    tmp_path: Path, arguments: dict[str, Any]
) -> None:
    """Column names, operators, functions, durations and times outside their patterns are
    refused before any request."""
    with serve_http(seeded()) as server:
        async with influx(tmp_path, server) as built:
            await failure(built.module.query("metrics", **arguments), InvalidArgument)
    assert server.requests == []


@pytest.mark.parametrize(
    "point",
    [
        {"measurement": "m", "fields": {"v": 1}, "tags": {"a": "x\ny"}},
        {"measurement": "m\nevil", "fields": {"v": 1}},
        {"measurement": "m", "fields": {"_v": 1}},
        {"measurement": "m", "fields": {}},
        {"measurement": "m", "fields": {"v": float("nan")}},
        {"measurement": "m", "fields": {"v": 1}, "extra": 1},
    ],
)
async def test_points_that_could_inject_lines_are_refused(
    tmp_path: Path, point: dict[str, Any]
) -> None:
    """Newlines, reserved keys, empty or non-finite fields and unknown keys are refused."""
    with serve_http(seeded()) as server:
        async with influx(tmp_path, server) as built:
            await failure(built.module.write_points("scratch", [point]), InvalidArgument)
    assert server.requests == []


async def test_escaped_line_protocol_round_trips(tmp_path: Path) -> None:
    """Spaces, commas, equals signs, quotes and backslashes in tag and field keys and values
    survive escaping (measurement names are plain identifiers)."""
    service = seeded()
    point = {"measurement": "m.x-1", "tags": {"k=1": "a b,c"},
             "fields": {"f 1": 'say "hi" \\ there', "n": 3}, "time": NOW - 5}  # fmt: skip
    with serve_http(service) as server:
        async with influx(tmp_path, server) as built:
            await built.module.write_points("scratch", [point])
    (stored,) = service.buckets["scratch"]
    assert stored["measurement"] == "agent_agent-01.m.x-1"
    assert stored["tags"] == {"k=1": "a b,c"}
    assert stored["fields"] == {"f 1": 'say "hi" \\ there', "n": 3}


async def test_influxdb_org_credential_overrides_config(tmp_path: Path) -> None:
    """INFLUXDB_ORG from the broker replaces config.org; a wrong org is a status-only error."""
    service = seeded()
    with serve_http(service) as server:
        async with influx(tmp_path, server, INFLUXDB_ORG="elsewhere") as built:
            message = await failure(built.module.query("metrics"), BackendError)
    assert "org=elsewhere" in server.requests[0].query
    assert "HTTP 404" in message
    assert_clean(message, [TOKEN])


async def test_absent_org_credential_is_looked_up_once(tmp_path: Path) -> None:
    """Without INFLUXDB_ORG, config.org is used and the missing key is not re-read every call."""
    with serve_http(seeded()) as server:
        async with influx(tmp_path, server) as built:
            await built.module.query("metrics")
            await built.module.query("metrics")
    assert all("org=homelab" in r.query for r in server.requests)
    audit = (tmp_path / "agent-01" / "audit-influxdb.jsonl").read_text()
    assert audit.count('"INFLUXDB_ORG"') == 1


@pytest.mark.parametrize("key", ["_measurement", "_field", "_value", "_start"])
async def test_delete_refuses_underscore_tag_keys(tmp_path: Path, key: str) -> None:
    """A tag key starting with '_' (a column InfluxDB owns, such as a second _measurement term)
    is refused before anything is sent, as write_points refuses it."""
    with serve_http(seeded()) as server:
        async with influx(tmp_path, server) as built:
            await failure(
                built.module.delete_points("scratch", "cpu", "-1h", tags={key: "mem"}),
                InvalidArgument,
            )
    assert server.requests == []


async def test_query_limit_defaults_to_max_rows_when_that_is_smaller(tmp_path: Path) -> None:
    """With max_rows below the usual default limit, a query without a limit is answered, capped
    at max_rows; an explicit limit above max_rows is still refused."""
    service = seeded()
    with serve_http(service) as server:
        (tmp_path / "agent-01").mkdir()
        environ = {"INFLUXDB_URL": server.url, "INFLUXDB_TOKEN": TOKEN}
        config = {**CONFIG, "max_rows": 2}
        async with built_module(tmp_path / "agent-01", "influxdb", config, environ) as built:
            answer = await built.module.query("metrics")
            await failure(built.module.query("metrics", limit=3), InvalidArgument)
    assert answer["count"] == 2
    assert answer["truncated"] is True
