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
