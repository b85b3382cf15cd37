"""``scoped-mcp tools --manifest M``: the tools an agent with this manifest gets, by mode.

``--json`` adds each tool's parameters as the agent's client is sent them (name, type, required,
description, and default and enum where the schema has them), derived from the method signatures
without creating any module. A proxied upstream's tools have ``"parameters": null``: the upstream
describes them at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

EXIT_OK = 0
UPSTREAM_DESCRIPTION = "(proxied; the upstream server describes it at start-up)"


def run(path: str, *, as_json: bool) -> int:
    """Print a row per tool (name, mode, description), or ``{"tools": [...]}`` with ``as_json``."""
    from scoped_mcp import registry
    from scoped_mcp.manifest import load

    planned = registry.plan(load(path))
    rows: list[dict[str, Any]] = [
        {"name": t.name, "module": m.key, "mode": t.spec.mode, "description": t.description}
        for m in planned
        for t in m.tools
    ]
    if as_json:
        from scoped_mcp.pipeline import input_schema

        specs = [(m.cls, t.spec) for m in planned for t in m.tools]
        for row, (cls, spec) in zip(rows, specs, strict=True):
            row["parameters"] = parameters(input_schema(cls, spec))
    rows += [
        {"name": name, "module": m.key, "mode": mode, "description": UPSTREAM_DESCRIPTION}
        | ({"parameters": None} if as_json else {})
        for m in planned
        for name, mode in m.configured
    ]
    if as_json:
        print(json.dumps({"tools": rows}, indent=2))
    else:
        width = max((len(r["name"]) for r in rows), default=4)
        for row in rows:
            print(f"{row['name']:<{width}}  {row['mode']:<5}  {row['description']}")
    return EXIT_OK


def parameters(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per property of a tool's input schema, in signature order."""
    required = set(schema.get("required", ()))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        row: dict[str, Any] = {
            "name": name,
            "type": type_name(prop),
            "required": name in required,
            "description": prop.get("description", ""),
        }
        if "default" in prop:
            row["default"] = prop["default"]
        if "enum" in prop:
            row["enum"] = prop["enum"]
        rows.append(row)
    return rows


def type_name(prop: Mapping[str, Any]) -> str:
    """A short JSON-schema type: ``string``, ``array[string]``, ``object | null``, ``Column``."""
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " | ".join(type_name(member) for member in prop["anyOf"])
    kind = prop.get("type")
    if isinstance(kind, list):
        return " | ".join(kind)
    if kind == "array" and isinstance(prop.get("items"), Mapping):
        return f"array[{type_name(prop['items'])}]"
    if kind == "object" and isinstance(prop.get("additionalProperties"), Mapping):
        return f"object[{type_name(prop['additionalProperties'])}]"
    return str(kind) if kind else "any"
