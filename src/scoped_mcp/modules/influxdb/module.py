"""influxdb module (InfluxDB v2 HTTP API): structured queries over allowed buckets, and writes and
deletes confined to the agent's own measurement namespace.

* Buckets: ``buckets`` may be read, ``write_buckets`` written to and deleted from, and buckets
  the agent created (``agent_{agent_id}.{name}``) both. Anything else is refused before the body
  runs (``Scoped("buckets")``, ``Scoped("write_buckets")``; strategies in ``scopes``).
* Measurements the agent writes are named ``agent_{agent_id}.{name}``; every query hides other
  agents' namespaces, and deletes are pinned to one of the agent's own measurements.
* Queries are built from structured filters, a time range and an aggregate from a fixed list
  (``build``): the agent never sends Flux, InfluxQL or line protocol.
* ``INFLUXDB_URL`` and ``INFLUXDB_TOKEN`` (sent as ``Authorization: Token ...``) are attached by
  ``CredentialAuth`` inside the request; ``INFLUXDB_ORG``, when set, overrides ``config.org``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from pydantic import Field, ValidationError

from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import BackendError, InvalidArgument, ScopeViolation
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import tool
from scoped_mcp.modules._http_module import HttpModule
from scoped_mcp.modules.influxdb import build as flux
from scoped_mcp.modules.influxdb.scopes import BucketScope, own_bucket
from scoped_mcp.net.client import HttpConfig
from scoped_mcp.scoping import Scoped, ScopeStrategy

_DIALECT: Final = {"header": True, "annotations": [], "delimiter": ",", "commentPrefix": "#"}
_DROPPED_COLUMNS: Final = frozenset({"", "result"})
MAX_POINTS: Final = 5000

# Parameters several tools share: type, scope and description.
ReadBucket = Annotated[
    str,
    Scoped("buckets"),
    Field(
        description='A bucket you may read: one the operator allows, e.g. "metrics", or one '
        "you created (agent_{agent_id}.{name})."
    ),
]
WriteBucket = Annotated[
    str,
    Scoped("write_buckets"),
    Field(
        description="A bucket you may write to: one the operator allows for writing, or one "
        "you created (agent_{agent_id}.{name})."
    ),
]
Since = Annotated[
    str,
    Field(
        description='How far back to look: a relative duration such as "-30d" or "-12h", or an '
        "RFC 3339 time."
    ),
]


class InfluxConfig(HttpConfig):
    """``modules.influxdb.config``."""

    org: str | None = Field(default=None, description="Organisation (INFLUXDB_ORG overrides).")
    buckets: list[str] = Field(default=[], description="Buckets the agent may query.")
    write_buckets: list[str] = Field(
        default=[], description="Buckets the agent may write to and delete from (own namespace)."
    )
    max_rows: int = Field(default=1000, gt=0, le=100_000, description="Rows a query returns.")
    max_retention_days: int = Field(
        default=30, gt=0, le=3650, description="Longest retention for buckets the agent creates."
    )
    max_write_bytes: int = Field(
        default=1024 * 1024, gt=0, le=64 * 1024 * 1024, description="Largest write body."
    )


class InfluxModule(HttpModule):
    """Query InfluxDB through structured filters; write only into the agent's namespace."""

    name = "influxdb"
    required_credentials = ("INFLUXDB_URL", "INFLUXDB_TOKEN")
    optional_credentials = ("INFLUXDB_ORG",)
    config_model = InfluxConfig
    config: InfluxConfig
    service = "influxdb"
    url_key = "INFLUXDB_URL"
    token_key = "INFLUXDB_TOKEN"  # noqa: S105 - a key name, not a value
    auth_scheme = "Token"

    def __init__(
        self, agent_ctx: AgentContext, credentials: CredentialView, config: InfluxConfig
    ) -> None:
        super().__init__(agent_ctx, credentials, config)
        for bucket in (*config.buckets, *config.write_buckets):
            flux.identifier(bucket, "bucket", flux.BUCKET)

    def scope_strategies(self) -> Mapping[str, ScopeStrategy]:
        """Buckets to read, buckets to write, and a new bucket's name in the agent's namespace."""
        return {
            "buckets": BucketScope(self.config.buckets, write=False),
            "write_buckets": BucketScope(self.config.write_buckets, write=True),
            "own_bucket": own_bucket(),
        }

    async def _org(self) -> str:
        # The broker remembers a missing optional key for its TTL: no backend read per call.
        if await self.credentials.has("INFLUXDB_ORG"):
            async with self.credentials.use("INFLUXDB_ORG") as org:
                return str(org.text())
        if self.config.org:
            return self.config.org
        raise BackendError("influxdb: no organisation (set config.org or INFLUXDB_ORG)")

    async def _send(self, method: str, path: str, params: dict[str, str], **kw: Any) -> Any:
        params = {"org": await self._org(), **params}
        answer = await self._http.call(method, f"{path}?{urlencode(params)}", **kw)
        if not answer.ok:
            raise self._http.error(answer)
        return answer

    async def _rows(self, program: str) -> list[dict[str, str]]:
        body = {"query": program, "type": "flux", "dialect": _DIALECT}
        answer = await self._send("POST", "/api/v2/query", {}, payload=body)
        text = answer.body.decode("utf-8", "replace")
        try:
            return self._parse_csv(text)
        except csv.Error:  # a field over csv's size limit, a NUL byte: not an answer we can read
            raise BackendError("influxdb: the query answer is not readable CSV") from None

    def _parse_csv(self, text: str) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        for block in text.replace("\r\n", "\n").split("\n\n"):
            for row in csv.DictReader(io.StringIO(block.strip("\n"))):
                rows.append({k: v for k, v in row.items() if k not in _DROPPED_COLUMNS and k})
                if len(rows) >= self.config.max_rows:
                    return rows
        return rows

    @tool(mode="read")
    async def query(
        self,
        bucket: ReadBucket,
        *,
        filters: Annotated[
            list[flux.Filter] | None,
            Field(
                description="Conditions that must all hold, at most 20, e.g. "
                '[{"field": "_measurement", "op": "==", "value": "docker_cpu"}]. field: '
                "_measurement, _field, _value or a tag key; op: ==, !=, >, >=, <, <=, =~, !~ "
                "(the last two take a regular expression)."
            ),
        ] = None,
        start: Annotated[
            str,
            Field(
                description='Start of the range: a relative duration such as "-1h", "-30m" or '
                '"-7d", or an RFC 3339 time such as "2024-05-01T00:00:00Z".'
            ),
        ] = "-1h",
        stop: Annotated[
            str | None,
            Field(description="End of the range, in the same forms as start; omitted: now."),
        ] = None,
        aggregate: Annotated[
            flux.Aggregate | None,
            Field(
                description='One value per time window, e.g. {"every": "5m", "fn": "mean"}; '
                "fn: mean, median, sum, min, max, count, first or last."
            ),
        ] = None,
        limit: Annotated[
            int | None,
            Field(
                description="Most rows to return: 1 to the operator's max_rows (1000 unless "
                "the operator set another); omitted: max_rows."
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Query a bucket with structured filters (no Flux), e.g.
        filters=[{"field": "_measurement", "op": "==", "value": "docker_cpu"}].

        op: ==, !=, >, >=, <, <=, =~, !~ (regular expression). start/stop: -1h, -30m or RFC 3339.
        aggregate: {"every": "5m", "fn": "mean"} (mean, median, sum, min, max, count, first, last).
        limit: rows to return, at most max_rows (the default).
        """
        limit = self.config.max_rows if limit is None else limit
        if not 1 <= limit <= self.config.max_rows:
            raise InvalidArgument(f"limit must be between 1 and {self.config.max_rows}")
        if filters and len(filters) > 20:
            raise InvalidArgument("at most 20 filters")
        try:
            checked = [flux.Filter.model_validate(f) for f in filters or []]
            window = flux.Aggregate.model_validate(aggregate) if aggregate else None
        except ValidationError:
            raise InvalidArgument("filters or aggregate are malformed") from None
        program = flux.flux_query(
            bucket=bucket,
            agent_id=self.agent_ctx.agent_id,
            start=start,
            stop=stop,
            filters=checked,
            aggregate=window,
            limit=limit,
        )
        rows = await self._rows(program)
        return {"rows": rows, "count": len(rows), "truncated": len(rows) >= self.config.max_rows}

    @tool(mode="read")
    async def list_measurements(self, bucket: ReadBucket, start: Since = "-30d") -> list[str]:
        """List the measurements in a bucket (other agents' namespaces are hidden)."""
        program = flux.schema_query("measurements", bucket, None, start)
        names = [row.get("_value", "") for row in await self._rows(program)]
        return sorted(n for n in names if n and flux.visible(n, self.agent_ctx.agent_id))

    @tool(mode="read")
    async def get_schema(
        self,
        bucket: ReadBucket,
        measurement: Annotated[
            str,
            Field(description='A measurement, as list_measurements returns it, e.g. "docker_cpu".'),
        ],
        start: Since = "-30d",
    ) -> dict[str, Any]:
        """The field keys and tag keys of one measurement."""
        if not flux.visible(flux.identifier(measurement, "measurement"), self.agent_ctx.agent_id):
            raise ScopeViolation("measurement belongs to another agent's namespace")
        result: dict[str, Any] = {"measurement": measurement}
        for kind, key in (("measurementFieldKeys", "fields"), ("measurementTagKeys", "tags")):
            rows = await self._rows(flux.schema_query(kind, bucket, measurement, start))
            result[key] = sorted(r["_value"] for r in rows if r.get("_value"))
        return result

    @tool(mode="write")
    async def write_points(
        self,
        bucket: WriteBucket,
        points: Annotated[
            list[dict[str, Any]],
            Field(
                description=f"1 to {MAX_POINTS:,} points, e.g. "
                '[{"measurement": "cpu", "fields": {"value": 0.64}, "tags": {"host": "web1"}, '
                '"time": "2024-05-01T12:00:00Z"}]; tags and time are optional (time: epoch '
                "nanoseconds or RFC 3339, default now). Stored as agent_{agent_id}.{measurement}."
            ),
        ],
    ) -> dict[str, Any]:
        """Write points: each {"measurement", "fields", optional "tags", optional "time"}.

        The measurement is stored as agent_{agent_id}.{measurement}; time is epoch nanoseconds
        or RFC 3339 (default: now). Returns the stored measurement names.
        """
        if not points or len(points) > MAX_POINTS:
            raise InvalidArgument(f"give 1 to {MAX_POINTS} points")
        lines, names = [], set()
        for point in points:
            name, text = self._point(point)
            lines.append(text)
            names.add(name)
        body = "\n".join(lines).encode("utf-8")
        if len(body) > self.config.max_write_bytes:
            raise InvalidArgument(f"the write is larger than {self.config.max_write_bytes} bytes")
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        params = {"bucket": bucket, "precision": "ns"}
        await self._send("POST", "/api/v2/write", params, content=body, headers=headers)
        return {"written": len(lines), "measurements": sorted(names), "bucket": bucket}

    def _point(self, point: Any) -> tuple[str, str]:
        if not isinstance(point, dict) or set(point) - {"measurement", "tags", "fields", "time"}:
            raise InvalidArgument("a point has measurement, fields, and optional tags and time")
        name = flux.owned_measurement(point.get("measurement", ""), self.agent_ctx.agent_id)
        tags, fields = point.get("tags") or {}, point.get("fields") or {}
        if not isinstance(tags, dict) or not isinstance(fields, dict):
            raise InvalidArgument("tags and fields must be objects")
        return name, flux.line(name, tags, fields, _time_ns(point.get("time")))

    @tool(mode="write")
    async def create_bucket(
        self,
        name: Annotated[
            str,
            Scoped("own_bucket"),
            Field(
                description='Short name of the new bucket, e.g. "scratch"; it is created as '
                "agent_{agent_id}.{name}."
            ),
        ],
        retention_days: Annotated[
            int,
            Field(
                description="Days its data is kept: 1 to the operator's max_retention_days (30 "
                "unless the operator set another)."
            ),
        ] = 7,
    ) -> dict[str, Any]:
        """Create a bucket of your own, named agent_{agent_id}.{name}, with a retention period."""
        if not 1 <= retention_days <= self.config.max_retention_days:
            raise InvalidArgument(f"retention_days must be 1 to {self.config.max_retention_days}")
        bucket = name  # already agent_{agent_id}.{name}: the own_bucket strategy placed it
        orgs = (await self._send("GET", "/api/v2/orgs", {})).json()
        found = orgs.get("orgs") if isinstance(orgs, dict) else None
        if not isinstance(found, list) or not found or not isinstance(found[0], dict):
            raise BackendError("influxdb: the organisation was not found")
        payload = {
            "orgID": found[0].get("id"),
            "name": bucket,
            "retentionRules": [{"type": "expire", "everySeconds": retention_days * 86400}],
        }
        answer = await self._send("POST", "/api/v2/buckets", {}, payload=payload)
        created = answer.json() if isinstance(answer.json(), dict) else {}
        return {"bucket": bucket, "id": created.get("id"), "retention_days": retention_days}

    @tool(mode="write")
    async def delete_points(
        self,
        bucket: WriteBucket,
        measurement: Annotated[
            str,
            Field(
                description='One of your measurements, by the name you wrote, e.g. "cpu" '
                "(stored as agent_{agent_id}.cpu)."
            ),
        ],
        start: Annotated[
            str,
            Field(
                description='Delete from this time: a relative duration such as "-1h" or an RFC '
                "3339 time."
            ),
        ],
        stop: Annotated[
            str,
            Field(description='Delete up to this time, in the same forms; default "-0s" (now).'),
        ] = "-0s",
        tags: Annotated[
            dict[str, str] | None,
            Field(
                description='Only points with these tag values, e.g. {"host": "web1"}; omitted: '
                "every point of the measurement in the range."
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Delete points of one of your measurements between start and stop, optionally only
        those with the given tag values."""
        name = flux.owned_measurement(measurement, self.agent_ctx.agent_id)
        payload = {
            "start": flux.absolute_time(start, "start"),
            "stop": flux.absolute_time(stop, "stop"),
            "predicate": flux.delete_predicate(name, tags),
        }
        await self._send("POST", "/api/v2/delete", {"bucket": bucket}, payload=payload)
        return {"deleted": True, "measurement": name, "bucket": bucket}


def _time_ns(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        stamp = flux.absolute_time(value, "time")
        seconds = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        return int(seconds * 1_000_000_000)
    raise InvalidArgument("time must be epoch nanoseconds or an RFC 3339 string")
