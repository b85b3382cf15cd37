"""Flux queries, line protocol and delete predicates built from structured input, never from text.

The agent never writes Flux, InfluxQL or line protocol. Identifiers (buckets, measurements, tag and
field keys, column names) must match a strict pattern; values become Flux literals through one
escaping function that refuses control characters and Flux string interpolation (``${``).
Operators and aggregate functions come from fixed tables, durations and times from strict patterns,
so no input can end a literal and add code.

Measurements of the form ``agent_{agent_id}.{name}`` belong to one agent. Every query built here
starts with a filter that hides every other agent's measurements.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from scoped_mcp.errors import InvalidArgument, ScopeViolation

Op = Literal["==", "!=", ">", ">=", "<", "<=", "=~", "!~"]
AggregateFn = Literal["mean", "median", "sum", "min", "max", "count", "first", "last"]
Scalar = str | int | float | bool

NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
COLUMN: Final = re.compile(r"_measurement|_field|_value|[A-Za-z][A-Za-z0-9_.-]{0,127}")
BUCKET: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
DURATION: Final = re.compile(r"-?[0-9]{1,6}(ns|us|ms|s|m|h|d|w|mo|y)")
EVERY: Final = re.compile(r"[0-9]{1,6}(s|m|h|d|w)")
NAMESPACED: Final = r"^agent_[A-Za-z0-9][A-Za-z0-9_-]*\."
MAX_STRING: Final = 1024
_UNITS: Final = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400,
                 "w": 604800, "mo": 2592000, "y": 31536000}  # fmt: skip


class Filter(BaseModel):
    """One condition: ``{"field": "_measurement", "op": "==", "value": "docker_cpu"}``."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="_measurement, _field, _value or a tag key.")
    op: Op = "=="
    value: Scalar


class Aggregate(BaseModel):
    """``aggregateWindow``: a window length and a function from a fixed list."""

    model_config = ConfigDict(extra="forbid")

    every: str = Field(description="Window length: 30s, 5m, 1h, 1d, 1w.")
    fn: AggregateFn = "mean"


def prefix_for(agent_id: str) -> str:
    """The measurement (and bucket) namespace of one agent: ``agent_{agent_id}.``."""
    return f"agent_{agent_id}."


def identifier(value: str, what: str, pattern: re.Pattern[str] = NAME) -> str:
    """``value`` if it matches ``pattern``; identifiers are never escaped, only checked."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidArgument(f"{what} must be letters, digits, '_', '-' or '.' (at most 128)")
    return value


def string(value: str) -> str:
    """A Flux string literal for ``value``."""
    if len(value) > MAX_STRING:
        raise InvalidArgument(f"a value is longer than {MAX_STRING} characters")
    if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in value):
        raise InvalidArgument("a value contains a control character")
    if "${" in value:
        raise InvalidArgument("a value must not contain '${'")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(value: Scalar) -> str:
    """A Flux literal for a string, integer, float or boolean."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument("numbers must be finite")
        return repr(value)
    if isinstance(value, str):
        return string(value)
    raise InvalidArgument("a value must be a string, number or boolean")


def time_bound(value: str, what: str) -> str:
    """A Flux time: a relative duration (``-1h``) or ``time(v: "<RFC3339>")``."""
    if isinstance(value, str) and DURATION.fullmatch(value):
        return value
    return f"time(v: {string(absolute_time(value, what))})"


def absolute_time(value: str, what: str, *, now: datetime | None = None) -> str:
    """``value`` (relative duration or RFC 3339) as an RFC 3339 UTC timestamp."""
    try:
        if isinstance(value, str) and DURATION.fullmatch(value):
            number = re.match(r"-?[0-9]+", value)
            assert number is not None
            seconds = int(number.group()) * _UNITS[value[number.end() :]]
            return _rfc3339((now or datetime.now(UTC)) + timedelta(seconds=seconds))
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument(f"{what} must be like -1h, -30m or an RFC 3339 time") from None
        if parsed.tzinfo is None:
            raise InvalidArgument(f"{what} needs a time zone (Z or +00:00)")
        return _rfc3339(parsed.astimezone(UTC))
    except OverflowError:
        raise InvalidArgument(f"{what} is outside the years 1 to 9999") from None


def _rfc3339(moment: datetime) -> str:
    # strftime's %Y does not pad years below 1000 on every platform; RFC 3339 needs four digits.
    return f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S.%fZ")


def condition(item: Filter) -> str:
    """One filter as a Flux predicate on ``r``."""
    column = f'r["{identifier(item.field, "filter field", COLUMN)}"]'
    if item.op in ("=~", "!~"):
        if not isinstance(item.value, str):
            raise InvalidArgument("=~ and !~ need a string (a regular expression)")
        return f"{column} {item.op} regexp.compile(v: {string(item.value)})"
    return f"{column} {item.op} {literal(item.value)}"


def flux_query(
    *,
    bucket: str,
    agent_id: str,
    start: str,
    stop: str | None,
    filters: list[Filter],
    aggregate: Aggregate | None,
    limit: int,
) -> str:
    """The whole Flux program for one structured query."""
    lines = ['import "regexp"'] if any(f.op in ("=~", "!~") for f in filters) else []
    lines.append(f"from(bucket: {string(identifier(bucket, 'bucket', BUCKET))})")
    stop_part = f", stop: {time_bound(stop, 'stop')}" if stop else ""
    lines.append(f"  |> range(start: {time_bound(start, 'start')}{stop_part})")
    lines.append(isolation(agent_id))
    lines.extend(f"  |> filter(fn: (r) => {condition(f)})" for f in filters)
    if aggregate is not None:
        every = identifier(aggregate.every, "aggregate.every", EVERY)
        lines.append(
            f"  |> aggregateWindow(every: {every}, fn: {aggregate.fn}, createEmpty: false)"
        )
    lines.append(f"  |> limit(n: {int(limit)})")
    return "\n".join(lines)


def isolation(agent_id: str) -> str:
    """The filter that hides other agents' measurements (the agent id is a checked identifier)."""
    own = "^" + re.escape(prefix_for(agent_id))
    return f"  |> filter(fn: (r) => r._measurement !~ /{NAMESPACED}/ or r._measurement =~ /{own}/)"


def visible(measurement: str, agent_id: str) -> bool:
    """Whether a measurement name is the agent's own or nobody's namespace."""
    return not re.match(NAMESPACED, measurement) or measurement.startswith(prefix_for(agent_id))


def schema_query(kind: str, bucket: str, measurement: str | None, start: str) -> str:
    """A ``schema.*`` call listing measurements, or one measurement's field or tag keys."""
    args = f"bucket: {string(identifier(bucket, 'bucket', BUCKET))}"
    if measurement is not None:
        args += f", measurement: {string(identifier(measurement, 'measurement'))}"
    args += f", start: {time_bound(start, 'start')}"
    return f'import "influxdata/influxdb/schema"\nschema.{kind}({args})'


def _lp_escape(value: str, specials: str) -> str:
    if any(ord(c) < 32 or ord(c) == 0x7F for c in value):
        raise InvalidArgument("line protocol names and values must not contain control characters")
    for char in "\\" + specials:
        value = value.replace(char, "\\" + char)
    return value


def line(
    measurement: str, tags: dict[str, str], fields: dict[str, Scalar], time_ns: int | None
) -> str:
    """One point in line protocol, every part escaped for its position."""
    if not fields:
        raise InvalidArgument("a point needs at least one field")
    parts = [_lp_escape(measurement, ", ")]
    for key in sorted(tags):
        _user_key(key, "tag key")
        if not isinstance(tags[key], str) or not tags[key]:
            raise InvalidArgument("tag values must be non-empty strings")
        parts.append(f"{_lp_escape(key, ',= ')}={_lp_escape(tags[key], ',= ')}")
    encoded = []
    for key, value in fields.items():
        _user_key(key, "field key")
        encoded.append(f"{_lp_escape(key, ',= ')}={_field_value(value)}")
    text = ",".join(parts) + " " + ",".join(encoded)
    return text if time_ns is None else f"{text} {int(time_ns)}"


def _user_key(key: str, what: str) -> None:
    if not isinstance(key, str) or not key or key.startswith("_") or len(key) > 128:
        raise InvalidArgument(f"{what} must be 1-128 characters and not start with '_'")


def _field_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument("field values must be finite")
        return repr(value)
    if isinstance(value, str):
        if len(value) > 64 * 1024:
            raise InvalidArgument("a string field is longer than 64 KiB")
        return '"' + _lp_escape(value, '"') + '"'
    raise InvalidArgument("field values must be strings, numbers or booleans")


def delete_predicate(measurement: str, tags: dict[str, str] | None) -> str:
    """``_measurement="m" AND tag="v"``; quotes and backslashes are refused, not escaped."""
    pairs = [("_measurement", measurement), *sorted((tags or {}).items())]
    terms = []
    for index, (key, value) in enumerate(pairs):
        if index:
            # A second _measurement (or _field) term can be read as a delete source of its own,
            # outside the agent's namespace: columns InfluxDB owns are not tags.
            _user_key(key, "tag key")
            identifier(key, "tag key", COLUMN)
        if not isinstance(value, str) or any(c in value for c in '"\\') or "\n" in value:
            raise InvalidArgument("delete values must not contain quotes or backslashes")
        terms.append(f'{key}="{value}"')
    return " AND ".join(terms)


def owned_measurement(name: str, agent_id: str) -> str:
    """``name`` placed in the agent's namespace; a name already in another one is refused."""
    identifier(name, "measurement")
    if re.match(NAMESPACED, name):
        if name.startswith(prefix_for(agent_id)):
            return name
        raise ScopeViolation("measurement belongs to another agent's namespace")
    return prefix_for(agent_id) + name
