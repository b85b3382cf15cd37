"""The parts of the InfluxDB v2 HTTP API the influxdb module uses, with state: orgs, buckets and
points. Queries run through a strict Flux-subset interpreter; writes parse line protocol."""

from __future__ import annotations

import csv
import io
import itertools
import re
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.services.fake_http import Recorded, Reply
from tests.services.flux_subset import FluxError, Parser, evaluate

_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400,
          "w": 604800, "mo": 2592000, "y": 31536000}  # fmt: skip
_FNS = {"mean": statistics.fmean, "median": statistics.median, "sum": sum, "min": min,
        "max": max, "count": len, "first": lambda v: v[0], "last": lambda v: v[-1]}  # fmt: skip


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped, quoted = [], "", False, False
    for char in text:
        if escaped:
            current += "\\" + char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
            current += char
        elif char == sep and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_line(text: str) -> dict[str, Any]:
    """One line of line protocol into measurement, tags, fields and time (ns)."""
    sections = _split_unescaped(text, " ")
    if len(sections) not in (2, 3):
        raise ValueError("bad line")
    head = _split_unescaped(sections[0], ",")
    tags = {}
    for item in head[1:]:
        key, value = _split_unescaped(item, "=")
        tags[_unescape(key)] = _unescape(value)
    fields: dict[str, Any] = {}
    for item in _split_unescaped(sections[1], ","):
        key, raw = _split_unescaped(item, "=")
        if raw.startswith('"'):
            value: Any = _unescape(raw[1:-1])
        elif raw.endswith("i"):
            value = int(raw[:-1])
        elif raw in ("true", "false"):
            value = raw == "true"
        else:
            value = float(raw)
        fields[_unescape(key)] = value
    stamp = int(sections[2]) if len(sections) == 3 else time.time_ns()
    return {"measurement": _unescape(head[0]), "tags": tags, "fields": fields, "time": stamp}


@dataclass
class InfluxService:
    """State plus a route function for FakeHTTP; the token must come as ``Token <value>``."""

    token: str
    org: str = "homelab"
    buckets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    deletes: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __call__(self, request: Recorded) -> Reply:
        if request.header("authorization") != f"Token {self.token}":
            return Reply(401, {"code": "unauthorized", "message": "unauthorized access"})
        parts = urlsplit(request.target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if query.get("org") not in (None, self.org):
            return Reply(404, {"code": "not found", "message": "organization not found"})
        routes = {
            ("POST", "/api/v2/query"): self._query,
            ("POST", "/api/v2/write"): self._write,
            ("GET", "/api/v2/orgs"): lambda r, q: Reply(200, {"orgs": [{"id": "org1"}]}),
            ("POST", "/api/v2/buckets"): self._create_bucket,
            ("POST", "/api/v2/delete"): self._delete,
        }
        handler = routes.get((request.method, parts.path))
        if handler is None:
            return Reply(404, {"code": "not found"})
        return handler(request, query)

    def _bucket(self, name: str) -> list[dict[str, Any]] | None:
        return self.buckets.get(name)

    def _write(self, request: Recorded, query: dict[str, str]) -> Reply:
        points = self._bucket(query.get("bucket", ""))
        if points is None:
            return Reply(404, {"code": "not found", "message": "bucket not found"})
        try:
            points.extend(parse_line(line) for line in request.body.decode().split("\n"))
        except ValueError:
            return Reply(400, {"code": "invalid", "message": "unable to parse"})
        return Reply(204, b"")

    def _create_bucket(self, request: Recorded, query: dict[str, str]) -> Reply:
        data = request.json()
        if data["name"] in self.buckets:
            return Reply(422, {"code": "conflict", "message": "bucket exists"})
        self.buckets[data["name"]] = []
        return Reply(201, {"id": f"b{next(self._ids)}", "name": data["name"]})

    def _delete(self, request: Recorded, query: dict[str, str]) -> Reply:
        points = self._bucket(query.get("bucket", ""))
        if points is None:
            return Reply(404, {"code": "not found"})
        data = request.json()
        self.deletes.append(data)
        wanted = dict(re.findall(r'([A-Za-z_][A-Za-z0-9_.-]*)="([^"]*)"', data["predicate"]))
        start, stop = (_ns(data[k]) for k in ("start", "stop"))
        points[:] = [p for p in points if not (start <= p["time"] <= stop and _matches(p, wanted))]
        return Reply(204, b"")

    def _query(self, request: Recorded, query: dict[str, str]) -> Reply:
        program = request.json()["query"]
        self.queries.append(program)
        try:
            _, calls = Parser(program).program()
            rows = self._run(calls)
        except (FluxError, KeyError, ValueError) as exc:
            return Reply(400, {"code": "invalid", "message": f"compilation failed: {exc}"})
        return Reply(200, _csv(rows), {"Content-Type": "text/csv; charset=utf-8"})

    def _run(self, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        name, args = calls[0]
        if name.startswith("schema."):
            return self._schema(name, args)
        if name != "from":
            raise FluxError("program must start with from()")
        points = self._bucket(args["bucket"][1])
        if points is None:
            raise ValueError("bucket not found")
        rows = [row for p in points for row in _rows(p)]
        for step, step_args in calls[1:]:
            rows = _step(step, step_args, rows)
        return rows

    def _schema(self, name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        points = self._bucket(args["bucket"][1]) or []
        if name == "schema.measurements":
            values = {p["measurement"] for p in points}
        else:
            chosen = [p for p in points if p["measurement"] == args["measurement"][1]]
            key = "fields" if name == "schema.measurementFieldKeys" else "tags"
            values = {k for p in chosen for k in p[key]}
        return [{"_value": v} for v in sorted(values)]


def _matches(point: dict[str, Any], wanted: dict[str, str]) -> bool:
    own = {"_measurement": point["measurement"], **point["tags"]}
    return all(own.get(k) == v for k, v in wanted.items())


def _ns(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)


def _time_arg(value: Any) -> int:
    if value[0] == "num":
        number = re.match(r"-?[0-9]+", value[1])
        assert number is not None
        return time.time_ns() + int(int(number.group()) * _UNITS[value[1][number.end() :]] * 1e9)
    if value[0] == "call" and value[1][0] == "time":
        return _ns(value[1][1]["v"][1])
    raise FluxError("bad time")


def _rows(point: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"_measurement": point["measurement"], "_field": key, "_value": value,
         "_time": point["time"], **point["tags"]}
        for key, value in point["fields"].items()
    ]  # fmt: skip


def _step(name: str, args: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if name == "range":
        start = _time_arg(args["start"])
        stop = _time_arg(args["stop"]) if "stop" in args else time.time_ns() + 1
        return [r for r in rows if start <= r["_time"] < stop]
    if name == "filter":
        return [r for r in rows if evaluate(args["fn"][1], r)]
    if name == "aggregateWindow":
        every = _time_arg(("num", args["every"][1])) - time.time_ns()
        return _aggregate(rows, abs(every) or 1, args["fn"][1])
    if name == "limit":
        return rows[: int(args["n"][1])]
    raise FluxError(f"unknown function {name}")


def _aggregate(rows: list[dict[str, Any]], every: int, fn: str) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: r["_time"]):
        series = tuple(sorted((k, v) for k, v in row.items() if k not in ("_value", "_time")))
        groups.setdefault((*series, row["_time"] // every), []).append(row)
    out = []
    for key, members in groups.items():
        row = {k: v for k, v in members[0].items() if k != "_value"}
        row.update(_time=(key[-1] + 1) * every, _value=_FNS[fn]([m["_value"] for m in members]))
        out.append(row)
    return out


def _csv(rows: list[dict[str, Any]]) -> str:
    columns = ["", "result", "table", *sorted({k for r in rows for k in r})]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({"": "", "result": "_result", "table": 0, **row})
    return buffer.getvalue()
