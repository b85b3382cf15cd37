"""Every parameter of every built-in tool has a description in the schema the agent is sent.

One server is built, as ``scoped-mcp`` builds it (manifest file, registry, credential broker,
call pipeline, FastMCP), with every built-in module in write mode, so every ``@tool`` method is
registered. ``mcp_proxy`` is left out: its tools and their schemas are the upstream server's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastmcp import Client

from scoped_mcp import manifest as manifest_file
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules import BUILTIN
from scoped_mcp.pipeline import input_schema, scope_rules, tool_signature
from scoped_mcp.server import Runtime, build, start_modules, stop_modules
from scoped_mcp.testing.harness import write_manifest

pytestmark = pytest.mark.anyio

UPSTREAM_DEFINED = {"mcp_proxy"}
"""Built-ins whose tools come from elsewhere at start-up, with the schemas given there."""

MODULES: dict[str, dict[str, Any]] = {
    "filesystem": {"mode": "write", "config": {"base_path": "data"}},
    "sqlite": {"mode": "write", "config": {"db_dir": "db"}},
    "ntfy": {"config": {"topic": "t-{agent_id}"}},
    "smtp": {"config": {"sender": "a@example.org", "allowed_recipients": ["@example.org"]}},
    "matrix": {"config": {"rooms": ["#ops:example.org"]}},
    "slack_webhook": {"config": {}},
    "discord_webhook": {"config": {}},
    "http_proxy": {
        "mode": "write",
        "config": {"services": {"api": {"base_url": "https://api.example.org"}}},
    },
    "grafana": {"mode": "write", "config": {"datasources": ["prom"]}},
    "influxdb": {"mode": "write", "config": {"org": "o", "buckets": ["m"], "write_buckets": ["m"]}},
}
"""A minimal manifest entry for each built-in module, in write mode where it has one."""

ENV = {
    "NTFY_URL": "https://ntfy.example.org",
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": "25",
    "SMTP_USER": "u",
    "SMTP_PASSWORD": "p",
    "MATRIX_HOMESERVER": "https://matrix.example.org",
    "MATRIX_ACCESS_TOKEN": "t",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/x",
    "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/x",
    "GRAFANA_URL": "https://grafana.example.org",
    "GRAFANA_SERVICE_ACCOUNT_TOKEN": "t",
    "INFLUXDB_URL": "https://influx.example.org",
    "INFLUXDB_TOKEN": "t",
}

SCOPED = {
    "filesystem_read_file": {"path"},
    "filesystem_list_dir": {"path"},
    "filesystem_write_file": {"path"},
    "filesystem_delete_file": {"path"},
    "smtp_send": {"to"},
    "matrix_send": {"room"},
    "http_proxy_get": {"service"},
    "http_proxy_post": {"service"},
    "http_proxy_put": {"service"},
    "http_proxy_delete": {"service"},
    "grafana_list_dashboards": {"folder_uid"},
    "grafana_query_datasource": {"datasource_uid"},
    "influxdb_query": {"bucket"},
    "influxdb_list_measurements": {"bucket"},
    "influxdb_get_schema": {"bucket"},
    "influxdb_write_points": {"bucket"},
    "influxdb_create_bucket": {"name"},
    "influxdb_delete_points": {"bucket"},
}
"""The parameters each tool scopes: a description must never cost a parameter its scope."""


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def runtime(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runtime]:
    """The server for one agent with every module above, started (no backend is contacted)."""
    top = tmp_path_factory.mktemp("schemas")
    data = {"agent_type": "t", "modules": MODULES, "audit": {"path": str(top / "audit.jsonl")}}
    path = write_manifest(top / "all-builtins.yml", data)
    built = build(manifest_file.load(path), AgentContext("agent-01", "t"), ENV)
    await start_modules(built)
    try:
        yield built
    finally:
        await stop_modules(built)


@pytest.fixture(scope="module")
async def schemas(runtime: Runtime) -> dict[str, dict[str, Any]]:
    """Tool name -> the inputSchema an MCP client receives from ``tools/list``."""
    async with Client(runtime.mcp) as client:
        return {tool.name: tool.input_schema for tool in await client.list_tools()}


def test_every_builtin_module_is_covered() -> None:
    """A new built-in module needs an entry in MODULES, so its tools are checked here too."""
    assert set(MODULES) == set(BUILTIN) - UPSTREAM_DEFINED


async def test_every_builtin_tool_is_registered(
    runtime: Runtime, schemas: dict[str, dict[str, Any]]
) -> None:
    """Write mode registers every ``@tool`` method of every module listed above."""
    expected = {tool.name for item in runtime.planned.values() for tool in item.tools}
    assert len(expected) == sum(len(item.cls.tool_specs()) for item in runtime.planned.values())
    assert set(schemas) == expected


async def test_every_parameter_has_a_description(schemas: dict[str, dict[str, Any]]) -> None:
    """Each property of each inputSchema says what it is: a non-empty description."""
    missing = [
        f"{tool}.{name}"
        for tool, schema in schemas.items()
        for name, prop in schema.get("properties", {}).items()
        if not str(prop.get("description", "")).strip()
    ]
    assert missing == []
    assert sum(len(s.get("properties", {})) for s in schemas.values()) > 80


async def test_schemas_from_the_class_equal_the_served_ones(
    runtime: Runtime, schemas: dict[str, dict[str, Any]]
) -> None:
    """``pipeline.input_schema`` (what ``scoped-mcp tools --json`` reads, with no module
    instance) is exactly the schema the server registers."""
    for item in runtime.planned.values():
        for tool in item.tools:
            assert input_schema(item.cls, tool.spec) == schemas[tool.name], tool.name


def test_described_parameters_keep_their_scope(runtime: Runtime) -> None:
    """The pipeline still finds every ``Scoped`` marker next to the ``Field`` descriptions."""
    found = {}
    for item in runtime.planned.values():
        module = dict(runtime.modules)[item.key]
        for tool in item.tools:
            _, signature, _ = tool_signature(item.cls, tool.spec)
            rules = scope_rules(module, list(signature.parameters.values()))
            if rules:
                found[tool.name] = set(rules)
    assert found == SCOPED


def test_a_path_description_reads_as_documented(runtime: Runtime) -> None:
    """Spot check: filesystem_read_file.path tells what a path is, with an example."""
    spec = next(s for s in runtime.planned["filesystem"].cls.tool_specs() if s.name == "read_file")
    path = input_schema(runtime.planned["filesystem"].cls, spec)["properties"]["path"]
    assert path["type"] == "string"
    assert "relative to your directory" in path["description"]
    assert "e.g." in path["description"]
