"""influxdb against hostile times and upstream answers, through the real call pipeline.

A time the calendar cannot hold is refused before anything is sent; an answer the parser refuses
fails the call cleanly; early years keep their RFC 3339 form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.runtime_support import answer, audit_records, refusal, runtime_for
from tests.services.fake_http import Recorded, Reply, serve_http

pytestmark = pytest.mark.anyio

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
