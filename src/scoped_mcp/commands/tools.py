"""``scoped-mcp tools --manifest M``: the tools an agent with this manifest gets, by mode."""

from __future__ import annotations

import json

EXIT_OK = 0
UPSTREAM_DESCRIPTION = "(proxied; the upstream server describes it at start-up)"


def run(path: str, *, as_json: bool) -> int:
    """Print a row per tool (name, mode, description), or ``{"tools": [...]}`` with ``as_json``."""
    from scoped_mcp import registry
    from scoped_mcp.manifest import load

    planned = registry.plan(load(path))
    rows = [
        {"name": t.name, "module": m.key, "mode": t.spec.mode, "description": t.description}
        for m in planned
        for t in m.tools
    ]
    rows += [
        {"name": name, "module": m.key, "mode": mode, "description": UPSTREAM_DESCRIPTION}
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
