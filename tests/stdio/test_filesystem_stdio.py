"""The filesystem module's hostile-path table, driven through the real server over stdio.

Two agents share one base_path. Canaries sit in agent-02's directory, in the shared agents/ folder
and outside base_path; every refused call must leave all of them (and agent-01's own directory)
exactly as they were, write a 'denied' audit record, and tell the agent only a short reason.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from tests.support import ServerHandle, running_server, tree_snapshot

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """One event loop for the module, so one server serves every test in it."""
    return "asyncio"


@dataclass
class Tree:
    """The shared base_path, its canaries, and one manifest per mode."""

    top: Path
    base: Path
    root: Path
    home: Path
    write_manifest: Path
    read_manifest: Path


def snapshot(top: Path, *, skip: tuple[Path, ...] = ()) -> dict[str, tuple[Any, ...]]:
    """The tree under ``top`` as tests.support.tree_snapshot records it."""
    return tree_snapshot(top, skip=skip, dir_mtime=False)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    top = tmp_path_factory.mktemp("fs-stdio")
    base = top / "base"
    (base / "agents" / "agent-02").mkdir(parents=True)
    (base / "agents" / "agent-02" / "secret.txt").write_text("AGENT-02 SECRET")
    (base / "agents" / "shared.txt").write_text("SHARED")
    (top / "outside").mkdir()
    (top / "outside" / "secret.txt").write_text("OUTSIDE SECRET")
    manifests = {}
    for mode in ("write", "read"):
        manifests[mode] = top / f"{mode}.yml"
        manifests[mode].write_text(
            yaml.safe_dump(
                {
                    "agent_type": "build",
                    "modules": {
                        "filesystem": {
                            "mode": mode,
                            "config": {"base_path": str(base), "max_file_bytes": 64},
                        }
                    },
                }
            )
        )
    return Tree(
        top, base, base / "agents" / "agent-01", top / "home", manifests["write"], manifests["read"]
    )


@pytest.fixture(scope="module")
async def server(tree: Tree) -> AsyncIterator[ServerHandle]:
    """agent-01 in write mode, shared by every test of this module."""
    async with running_server(
        tree.write_manifest,
        agent_id="agent-01",
        agent_type="build",
        extra_env={},
        home=tree.home / "write",
    ) as handle:
        yield handle


def check_message(message: str, tree: Tree) -> None:
    assert len(message) < 300, message
    assert "Traceback" not in message
    assert str(tree.top) not in message
    assert str(tree.base) not in message
    for secret in ("OUTSIDE SECRET", "AGENT-02 SECRET", "SHARED"):
        assert secret not in message


HOSTILE: list[tuple[str, dict[str, Any]]] = [
    (tool, {"path": path, **({"content": "pwned"} if tool == "filesystem_write_file" else {})})
    for tool in (
        "filesystem_read_file",
        "filesystem_list_dir",
        "filesystem_write_file",
        "filesystem_delete_file",
    )
    for path in (
        "..",
        "../agent-02/secret.txt",
        "notes/../../agent-02/secret.txt",
        "notes/../../shared.txt",
        "../../../outside/secret.txt",
        "/etc/passwd",
        "~",
        "~/secret.txt",
        "a\x00b",
        "a\nb",
        "a\x85b",
        "a\\b",
        "C:\\x",
        "..\\agent-02\\secret.txt",
        "x" * 256,
        "x" * 100_000,
        "d/" * 300,
        "sub-link/secret.txt",
        None,
        7,
        ["a"],
        {"path": "a"},
    )
]


async def test_hostile_table(server: ServerHandle, tree: Tree) -> None:
    """Every hostile path gets a short error, a 'denied' audit record and no side effect."""
    (tree.root / "sub-link").symlink_to(tree.top / "outside")
    failures = []
    for tool, arguments in HOSTILE:
        before_out = snapshot(tree.top, skip=(tree.root, tree.home))
        before_in = snapshot(tree.root)
        count = len(_calls(server))
        message = await server.error(tool, arguments)
        check_message(message, tree)
        records = _calls(server)
        label = f"{tool}({str(arguments['path'])[:30]!r})"
        if len(records) != count + 1 or records[-1]["outcome"] != "denied":
            failures.append(f"{label}: audit {records[count:]!r}"[:300])
        if snapshot(tree.top, skip=(tree.root, tree.home)) != before_out:
            failures.append(f"{label}: changed something outside the agent dir")
        if snapshot(tree.root) != before_in:
            failures.append(f"{label}: changed the agent dir")
    (tree.root / "sub-link").unlink()
    assert not failures, "\n".join(failures)


def _calls(server: ServerHandle) -> list[dict[str, Any]]:
    """The tool_call records (a call refused inside its tool also has a call_start before it)."""
    return [r for r in server.audit_records() if r["event"] == "tool_call"]


async def test_wrong_types_audited_with_tool_name(server: ServerHandle, tree: Tree) -> None:
    """A wrongly typed argument is refused by validation and audited with the tool's name."""
    message = await server.error("filesystem_read_file", {"path": 7})
    assert "invalid arguments" in message
    assert "path" in message
    check_message(message, tree)
    record = server.audit_records()[-1]
    assert record["tool"] == "filesystem_read_file"
    assert record["outcome"] == "denied"


async def test_literal_odd_names_stay_inside(server: ServerHandle, tree: Tree) -> None:
    """URL-encoded dots, drive letters and doubled slashes are literal names inside the dir."""
    before = snapshot(tree.top, skip=(tree.root, tree.home))
    for path, where in (
        ("%2e%2e/x", ("%2e%2e", "x")),
        ("C:/x", ("C:", "x")),
        ("a//b", ("a", "b")),
        ("notes/../y", ("y",)),
    ):
        await server.call("filesystem_write_file", {"path": path, "content": path})
        assert tree.root.joinpath(*where).read_text() == path
        assert await server.call("filesystem_read_file", {"path": path}) == path
    assert snapshot(tree.top, skip=(tree.root, tree.home)) == before


async def test_symlinks_refused_at_every_depth(server: ServerHandle, tree: Tree) -> None:
    """Final-component, intermediate and inside-pointing symlinks are all refused and audited."""
    (tree.root / "dir").mkdir(exist_ok=True)
    (tree.root / "dir" / "own.txt").write_text("mine")
    links = {
        "final": tree.top / "outside" / "secret.txt",
        "mid": tree.top / "outside",
        "inside": tree.root / "dir" / "own.txt",
        "sibling": tree.base / "agents" / "agent-02",
    }
    for name, target in links.items():
        (tree.root / name).symlink_to(target)
    before = snapshot(tree.top, skip=(tree.home,))
    try:
        for tool, path in (
            ("filesystem_read_file", "final"),
            ("filesystem_read_file", "inside"),
            ("filesystem_read_file", "mid/secret.txt"),
            ("filesystem_read_file", "sibling/secret.txt"),
            ("filesystem_list_dir", "mid"),
            ("filesystem_list_dir", "sibling"),
            ("filesystem_write_file", "final"),
            ("filesystem_write_file", "mid/new.txt"),
            ("filesystem_delete_file", "mid/secret.txt"),
        ):
            arguments: dict[str, Any] = {"path": path}
            if tool == "filesystem_write_file":
                arguments["content"] = "pwned"
            message = await server.error(tool, arguments)
            assert "symbolic link" in message, (tool, path, message)
            check_message(message, tree)
            assert server.audit_records()[-1]["outcome"] == "denied", (tool, path)
        assert snapshot(tree.top, skip=(tree.home,)) == before
    finally:
        for name in links:
            (tree.root / name).unlink()


async def test_limits_and_binary(server: ServerHandle, tree: Tree) -> None:
    """Size limit, non-UTF-8 reads, base64 round trip and invalid base64 behave over stdio."""
    message = await server.error("filesystem_write_file", {"path": "big", "content": "x" * 65})
    assert "64-byte limit" in message
    assert not (tree.root / "big").exists()
    (tree.root / "bin").write_bytes(b"\xff\x00")
    assert "base64" in await server.error("filesystem_read_file", {"path": "bin"})
    assert server.audit_records()[-1]["outcome"] == "denied"
    assert (
        await server.call("filesystem_read_file", {"path": "bin", "encoding": "base64"}) == "/wA="
    )
    await server.call(
        "filesystem_write_file", {"path": "b2", "content": "AAEC", "encoding": "base64"}
    )
    assert (tree.root / "b2").read_bytes() == b"\x00\x01\x02"
    message = await server.error(
        "filesystem_write_file", {"path": "b3", "content": "**", "encoding": "base64"}
    )
    assert "base64" in message
    assert not (tree.root / "b3").exists()


async def test_fifo_and_directory_refused(server: ServerHandle, tree: Tree) -> None:
    """A FIFO is refused at once (no hang) and deleting a directory is refused."""
    os.mkfifo(tree.root / "pipe")
    (tree.root / "keep").mkdir()
    try:
        with anyio.fail_after(5):
            assert "not a regular file" in await server.error(
                "filesystem_read_file", {"path": "pipe"}
            )
        assert "directory" in await server.error("filesystem_delete_file", {"path": "keep"})
        assert (tree.root / "keep").is_dir()
    finally:
        (tree.root / "pipe").unlink()


async def test_other_agent_cannot_see_agent_01(tree: Tree, server: ServerHandle) -> None:
    """agent-02, on the same base_path, sees only its own directory and cannot reach agent-01's."""
    await server.call("filesystem_write_file", {"path": "mine.txt", "content": "AGENT-01"})
    async with running_server(
        tree.write_manifest,
        agent_id="agent-02",
        agent_type="build",
        extra_env={},
        home=tree.home / "agent-02",
    ) as other:
        names = [e["name"] for e in (await other.call("filesystem_list_dir", {}))["entries"]]
        assert names == ["secret.txt"]
        assert await other.call("filesystem_read_file", {"path": "secret.txt"}) == "AGENT-02 SECRET"
        for path in ("../agent-01/mine.txt", "x/../../agent-01/mine.txt"):
            message = await other.error("filesystem_read_file", {"path": path})
            assert "AGENT-01" not in message
        assert other.audit_records()[-1]["outcome"] == "denied"
        assert other.audit_records()[-1]["agent_id"] == "agent-02"


async def test_read_mode_has_no_write_tools(tree: Tree) -> None:
    """In read mode only read tools exist; calling a write tool is 'unknown tool' and audited."""
    before = snapshot(tree.top, skip=(tree.home,))
    async with running_server(
        tree.read_manifest,
        agent_id="agent-01",
        agent_type="build",
        extra_env={},
        home=tree.home / "read",
    ) as reader:
        assert await reader.tool_names() == ["filesystem_list_dir", "filesystem_read_file"]
        for tool, arguments in (
            ("filesystem_write_file", {"path": "w.txt", "content": "x"}),
            ("filesystem_delete_file", {"path": "mine.txt"}),
        ):
            assert "unknown tool" in await reader.error(tool, arguments)
            record = reader.audit_records()[-1]
            assert record["outcome"] == "denied"
            assert record["tool"] == tool
    assert snapshot(tree.top, skip=(tree.home,)) == before
