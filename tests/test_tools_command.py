"""`scoped-mcp tools` lists the tools a proxied upstream will get, from the manifest alone."""

from __future__ import annotations

import json
from pathlib import Path

from scoped_mcp.testing.harness import write_manifest
from tests.support import base_env, run_cli

MCP_PROXY = "scoped_mcp.modules.mcp_proxy:McpProxyModule"


def test_tools_lists_the_mcp_proxy_allowlist_by_mode(tmp_path: Path) -> None:
    """Allowlisted upstream tools are listed under the module prefix; write ones in write mode."""
    proxy = {
        "command": "/nonexistent/upstream",
        "tools": {"search_issues": "read", "create_issue": "write"},
    }
    env = base_env(tmp_path / "home")
    for mode, expected in (
        ("read", [("gh_search_issues", "read")]),
        ("write", [("gh_search_issues", "read"), ("gh_create_issue", "write")]),
    ):
        path = tmp_path / f"{mode}.yml"
        modules: dict[str, dict[str, object]] = {"gh": {"type": MCP_PROXY, "mode": mode}}
        modules["gh"]["config"] = proxy
        write_manifest(path, {"agent_type": "build", "modules": modules})
        done = run_cli("tools", "--manifest", str(path), "--json", env=env)
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)["tools"]
        assert sorted((r["name"], r["mode"]) for r in rows) == sorted(expected)
        assert all(r["module"] == "gh" for r in rows)


def test_tools_json_lists_each_parameter_with_its_description(tmp_path: Path) -> None:
    """--json adds every parameter (name, type, required, description, default) as the agent's
    client gets it, from the method signatures; a proxied tool's parameters are null (unknown
    until the upstream answers). The human listing keeps its three columns."""
    from scoped_mcp.commands.tools import parameters
    from scoped_mcp.modules.filesystem import FilesystemModule
    from scoped_mcp.modules.sqlite import SqliteModule
    from scoped_mcp.pipeline import input_schema

    path = tmp_path / "m.yml"
    modules = {
        "filesystem": {"mode": "write", "config": {"base_path": str(tmp_path / "f")}},
        "sqlite": {"mode": "read", "config": {"db_dir": str(tmp_path / "db")}},
        "gh": {"type": MCP_PROXY, "config": {"command": "/nonexistent/up", "tools": {"s": "read"}}},
    }
    write_manifest(path, {"agent_type": "build", "modules": modules})
    env = base_env(tmp_path / "home")
    done = run_cli("tools", "--manifest", str(path), "--json", env=env)
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)["tools"]}
    assert set(rows["filesystem_read_file"]) == {
        "name", "module", "mode", "description", "parameters"
    }  # fmt: skip
    assert rows["filesystem_read_file"]["parameters"] == [
        {
            "name": "path",
            "type": "string",
            "required": True,
            "description": rows["filesystem_read_file"]["parameters"][0]["description"],
        },
        {
            "name": "encoding",
            "type": "string",
            "required": False,
            "description": '"utf-8" returns the text; "base64" returns the bytes '
            "base64-encoded (for binary files).",
            "default": "utf-8",
            "enum": ["utf-8", "base64"],
        },
    ]
    assert (
        "relative to your directory" in rows["filesystem_read_file"]["parameters"][0]["description"]
    )
    assert [(p["name"], p["type"], p["required"]) for p in rows["sqlite_query"]["parameters"]] == [
        ("sql", "string", True),
        ("params", "array[string | integer | number | null] | null", False),
    ]
    assert rows["sqlite_list_tables"]["parameters"] == []
    assert rows["gh_s"]["parameters"] is None
    for cls, prefix in ((FilesystemModule, "filesystem"), (SqliteModule, "sqlite")):
        for spec in cls.tool_specs():
            name = f"{prefix}_{spec.name}"
            if name in rows:
                assert rows[name]["parameters"] == parameters(input_schema(cls, spec))
                assert all(p["description"] for p in rows[name]["parameters"])

    human = run_cli("tools", "--manifest", str(path), env=env)
    assert human.returncode == 0, human.stderr
    width = max(len(name) for name in rows)
    assert human.stdout.splitlines() == [
        f"{r['name']:<{width}}  {r['mode']:<5}  {r['description']}" for r in rows.values()
    ]
