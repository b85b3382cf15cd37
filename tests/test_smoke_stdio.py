"""The server starts over stdio and registers tools by manifest mode."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]


async def test_write_mode_registers_read_and_write_tools(write_manifest, serve, tmp_path):
    """A filesystem module in write mode gets all four seed tool names."""
    manifest = write_manifest(
        {
            "agent_type": "build",
            "modules": {"filesystem": {"mode": "write", "config": {"base_path": str(tmp_path)}}},
        }
    )
    async with serve(manifest) as server:
        assert await server.tool_names() == [
            "filesystem_delete_file",
            "filesystem_list_dir",
            "filesystem_read_file",
            "filesystem_write_file",
        ]
        await server.call("filesystem_write_file", {"path": "a.txt", "content": "hello"})
        assert await server.call("filesystem_read_file", {"path": "a.txt"}) == "hello"
        assert (tmp_path / "agents" / "agent-01" / "a.txt").read_text() == "hello"


async def test_a_client_over_stdio_sees_every_parameter_described(write_manifest, serve, tmp_path):
    """tools/list over stdio carries each parameter's description, as `tools --json` shows it."""
    from scoped_mcp.modules.filesystem import FilesystemModule
    from scoped_mcp.modules.sqlite import SqliteModule
    from scoped_mcp.pipeline import input_schema

    manifest = write_manifest(
        {
            "agent_type": "build",
            "modules": {
                "filesystem": {"mode": "write", "config": {"base_path": str(tmp_path / "f")}},
                "sqlite": {"mode": "write", "config": {"db_dir": str(tmp_path / "db")}},
            },
        }
    )
    async with serve(manifest) as server:
        listed = {tool.name: tool.input_schema for tool in await server.client.list_tools()}
    described = {
        (tool, name): prop.get("description", "")
        for tool, schema in listed.items()
        for name, prop in schema["properties"].items()
    }
    assert len(described) == 14
    assert all(text.strip() for text in described.values()), described
    for cls, prefix in ((FilesystemModule, "filesystem"), (SqliteModule, "sqlite")):
        for spec in cls.tool_specs():
            assert listed[f"{prefix}_{spec.name}"] == input_schema(cls, spec)
    path = listed["filesystem_read_file"]["properties"]["path"]
    assert path["type"] == "string"
    assert path["description"].startswith("File to read, relative to your directory")
    column = listed["sqlite_create_table"]["properties"]["columns"]["items"]
    assert column["properties"]["type"]["description"] == "TEXT, INTEGER, REAL, BLOB or NUMERIC."
