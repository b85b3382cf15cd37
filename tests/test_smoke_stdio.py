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
