"""FilesystemModule through the real call pipeline (scope, run, audit), attacked from every side."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastmcp.exceptions import ToolError

from scoped_mcp.errors import ConfigError
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules.filesystem import FilesystemModule
from scoped_mcp.testing.harness import module_harness
from tests.support import bound_call, tree_snapshot

pytestmark = pytest.mark.anyio

AGENT = AgentContext("agent-01", "build")
TOOLS = ("read_file", "list_dir", "write_file", "delete_file")


@dataclass
class Harness:
    """One agent's filesystem module behind the real pipeline, with canaries around it."""

    tmp: Path
    base: Path
    root: Path
    outside: Path
    audit_path: Path
    tools: dict[str, Callable[..., Awaitable[Any]]]

    async def call(self, tool: str, **arguments: Any) -> Any:
        return await self.tools[tool](**arguments)

    async def refuse(self, tool: str, **arguments: Any) -> str:
        """Call a tool that must fail; return the agent-visible error text."""
        with pytest.raises(ToolError) as info:
            await self.tools[tool](**arguments)
        message = str(info.value)
        assert len(message) < 200, message
        assert str(self.tmp) not in message
        assert "Traceback" not in message
        return message

    def last_record(self) -> dict[str, Any]:
        lines = self.audit_path.read_text().splitlines()
        record: dict[str, Any] = json.loads(lines[-1])
        return record


def arguments_for(tool: str, path: Any) -> dict[str, Any]:
    return {"path": path, "content": "pwned"} if tool == "write_file" else {"path": path}


Maker = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[Maker]:
    """Build the filesystem module through the kit's harness, canaries around its directory.

    ``Harness.tools`` are the registered tools' own functions: the whole call pipeline (scope,
    body, scrub, errors, audit) without MCP's argument validation, so hostile types reach it.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def make(**config: Any) -> Harness:
            tmp = tmp_path
            base = tmp / "base"
            (base / "agents" / "agent-02").mkdir(parents=True)
            (base / "agents" / "agent-02" / "secret.txt").write_text("AGENT-02")
            (base / "agents" / "shared.txt").write_text("SHARED")
            outside = tmp / "outside"
            outside.mkdir()
            (outside / "secret.txt").write_text("OUTSIDE")
            harness = await stack.enter_async_context(
                module_harness(
                    tmp / "harness",
                    "filesystem",
                    {"base_path": str(base), **config},
                    agent_id=AGENT.agent_id,
                    agent_type=AGENT.agent_type,
                    mode="write",
                )
            )
            tools = {}
            for spec in FilesystemModule.tool_specs():
                registered: Any = await harness.runtime.mcp.get_tool(f"filesystem_{spec.name}")
                tools[spec.name] = bound_call(registered)
            root = base / "agents" / "agent-01"
            return Harness(tmp, base, root, outside, harness.audit.path, tools)

        yield make


def snapshot(top: Path, *, skip: tuple[Path, ...] = ()) -> dict[str, tuple[Any, ...]]:
    """The tree under ``top`` as tests.support.tree_snapshot records it."""
    return tree_snapshot(top, skip=skip)


def outside_snapshot(h: Harness) -> dict[str, tuple[Any, ...]]:
    return snapshot(h.tmp, skip=(h.root, h.audit_path.parent))


# -- the ordinary behaviour ---------------------------------------------------------------------


async def test_round_trip_inside_agent_directory(tmp_path: Path, make_harness: Maker) -> None:
    """Write, read, list and delete all act on {base_path}/agents/{agent_id}/ and are audited ok."""
    h = await make_harness()
    assert await h.call("write_file", path="notes/a.md", content="hi") == {
        "path": "notes/a.md",
        "bytes": 2,
    }
    assert (h.root / "notes" / "a.md").read_text() == "hi"
    assert await h.call("read_file", path="notes/a.md") == "hi"
    listing = await h.call("list_dir", path="notes")
    assert listing["entries"] == [{"name": "a.md", "type": "file", "size": 2}]
    assert await h.call("delete_file", path="notes/a.md") == {"path": "notes/a.md", "deleted": True}
    assert not (h.root / "notes" / "a.md").exists()
    assert h.last_record()["outcome"] == "ok"
    assert oct(h.root.stat().st_mode & 0o777) == "0o700"


# -- hostile paths: refused, audited as denied, nothing touched ---------------------------------

HOSTILE_PATHS = [
    "..",
    "../agent-02/secret.txt",
    "notes/../../agent-02/secret.txt",
    "notes/../../shared.txt",
    "../shared.txt",
    "../../../outside/secret.txt",
    "a/b/../../../outside",
    "/etc/passwd",
    "/tmp/x",
    "~",
    "~/secret.txt",
    "a\x00b",
    "secret.txt\x00.md",
    "a\nb",
    "\x1b[31m",
    "a\x85b",
    "a\\b",
    "..\\agent-02\\secret.txt",
    "C:\\x",
    "x" * 256,
    "x" * 100_000,
    "a/" * 3000,
    "d/" * 256 + "f",
    7,
    ["a"],
]


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("path", HOSTILE_PATHS, ids=lambda p: repr(p)[:40])
async def test_hostile_path_refused_without_side_effect(
    tmp_path: Path, make_harness: Maker, tool: str, path: Any
) -> None:
    """A hostile path gets a short error, a 'denied' audit record, and changes nothing anywhere."""
    h = await make_harness()
    before_out, before_in = outside_snapshot(h), snapshot(h.root)
    await h.refuse(tool, **arguments_for(tool, path))
    assert h.last_record()["outcome"] == "denied"
    assert outside_snapshot(h) == before_out
    assert snapshot(h.root) == before_in


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("%2e%2e/x", ("%2e%2e", "x")),
        ("%2e%2e%2fx", ("%2e%2e%2fx",)),
        ("C:/x", ("C:", "x")),
        ("a//b", ("a", "b")),
        ("./a", ("a",)),
        ("a/./b/../c", ("a", "c")),
        ("notes/../x", ("x",)),
        ("a/~", ("a", "~")),
        ("...", ("...",)),
    ],
)
async def test_odd_but_harmless_paths_stay_inside(
    tmp_path: Path, make_harness: Maker, path: str, where: tuple[str, ...]
) -> None:
    """URL-encoded dots, drive letters and redundant separators are literal names inside the dir."""
    h = await make_harness()
    before = outside_snapshot(h)
    await h.call("write_file", path=path, content="ok")
    assert h.root.joinpath(*where).read_text() == "ok"
    assert await h.call("read_file", path=path) == "ok"
    assert outside_snapshot(h) == before


@pytest.mark.parametrize("path", ["", ".", "./", "a/.."])
async def test_naming_the_directory_itself_is_refused_for_files(
    tmp_path: Path, make_harness: Maker, path: str
) -> None:
    """read/write/delete of the agent directory itself is refused; list_dir lists it."""
    h = await make_harness()
    for tool in ("read_file", "write_file", "delete_file"):
        assert "directory itself" in await h.refuse(tool, **arguments_for(tool, path))
        assert h.last_record()["outcome"] == "denied"
    assert (await h.call("list_dir", path=path))["path"] == ""


async def test_trailing_slash_is_lexical(tmp_path: Path, make_harness: Maker) -> None:
    """A trailing slash is dropped lexically: 'a.txt/' names a.txt inside the directory."""
    h = await make_harness()
    await h.call("write_file", path="a.txt/", content="x")
    assert (h.root / "a.txt").read_text() == "x"


async def test_unicode_normal_forms_are_distinct_names(tmp_path: Path, make_harness: Maker) -> None:
    """NFC and NFD spellings are different names on disk, both inside the directory."""
    h = await make_harness()
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    await h.call("write_file", path=nfc, content="nfc")
    await h.call("write_file", path=nfd, content="nfd")
    assert await h.call("read_file", path=nfc) == "nfc"
    assert await h.call("read_file", path=nfd) == "nfd"
    assert sorted(os.listdir(h.root)) == sorted([nfc, nfd])


async def test_longest_non_ascii_name_can_be_written(tmp_path: Path, make_harness: Maker) -> None:
    """A 252-byte name of 4-byte characters (within the 255-byte limit) is written and read back."""
    h = await make_harness()
    name = "\U0001d11e" * 63
    await h.call("write_file", path=name, content="clef")
    assert await h.call("read_file", path=name) == "clef"
    assert os.listdir(h.root) == [name]


async def test_deep_path_stays_inside(tmp_path: Path, make_harness: Maker) -> None:
    """A path at the 256-component depth limit is created below the agent root and nowhere else."""
    h = await make_harness()
    before = outside_snapshot(h)
    path = "d/" * 255 + "f"
    await h.call("write_file", path=path, content="deep")
    assert await h.call("read_file", path=path) == "deep"
    assert outside_snapshot(h) == before


# -- symbolic links: refused at every depth, even when they point inside -----------------------


async def test_final_symlink_outside_is_refused(tmp_path: Path, make_harness: Maker) -> None:
    """read_file of a symlink to an outside file is denied and does not reveal its content."""
    h = await make_harness()
    (h.root / "link").symlink_to(h.outside / "secret.txt")
    message = await h.refuse("read_file", path="link")
    assert "symbolic link" in message
    assert "OUTSIDE" not in message
    assert h.last_record()["outcome"] == "denied"


async def test_symlink_pointing_inside_is_refused(tmp_path: Path, make_harness: Maker) -> None:
    """No-follow semantics: even a symlink to a file in the agent's own dir is refused."""
    h = await make_harness()
    (h.root / "real.txt").write_text("mine")
    (h.root / "alias").symlink_to("real.txt")
    await h.refuse("read_file", path="alias")
    assert h.last_record()["outcome"] == "denied"


async def test_write_over_symlink_leaves_target_untouched(
    tmp_path: Path, make_harness: Maker
) -> None:
    """write_file over a symlink is refused; neither the link nor its outside target changes."""
    h = await make_harness()
    (h.root / "link").symlink_to(h.outside / "secret.txt")
    before = outside_snapshot(h)
    assert "symbolic link" in await h.refuse("write_file", path="link", content="pwned")
    assert h.last_record()["outcome"] == "denied"
    assert outside_snapshot(h) == before
    assert os.readlink(h.root / "link") == str(h.outside / "secret.txt")


@pytest.mark.parametrize("tool", TOOLS)
async def test_intermediate_symlink_dir_is_refused(
    tmp_path: Path, make_harness: Maker, tool: str
) -> None:
    """A symlinked directory in the middle of a path is refused by every tool ('denied')."""
    h = await make_harness()
    (h.root / "sub").symlink_to(h.outside)
    before = outside_snapshot(h)
    path = "sub" if tool == "list_dir" else "sub/secret.txt"
    assert "symbolic link" in await h.refuse(tool, **arguments_for(tool, path))
    assert h.last_record()["outcome"] == "denied"
    assert outside_snapshot(h) == before


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("linked", ["agents/agent-01", "agents"])
async def test_symlinked_agent_directory_is_refused(
    tmp_path: Path, make_harness: Maker, tool: str, linked: str
) -> None:
    """If the agent's own directory (or agents/) is swapped for a symlink, every tool refuses."""
    h = await make_harness()
    target = h.base / linked
    shutil.rmtree(target)
    if linked == "agents":
        (h.outside / "agent-01").mkdir()
    target.symlink_to(h.outside)
    before = outside_snapshot(h)
    await h.refuse(tool, **arguments_for(tool, "secret.txt"))
    assert h.last_record()["outcome"] == "denied"
    assert outside_snapshot(h) == before


async def test_startup_does_not_follow_symlinked_agents_dir(tmp_path: Path) -> None:
    """startup() refuses a symlinked agents/ folder instead of creating the agent dir through it."""
    base, outside = tmp_path / "base", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (base / "agents").symlink_to(outside)
    module = FilesystemModule(
        AGENT, {}, FilesystemModule.config_model.model_validate({"base_path": str(base)})
    )
    with pytest.raises(ConfigError, match="symbolic link"):
        await module.startup()
    assert list(outside.iterdir()) == []


async def test_list_dir_shows_symlinks_without_following(
    tmp_path: Path, make_harness: Maker
) -> None:
    """list_dir reports a symlink as 'symlink' and never the target's size or entries."""
    h = await make_harness()
    (h.root / "link").symlink_to(h.outside / "secret.txt")
    listing = await h.call("list_dir")
    assert listing["entries"] == [{"name": "link", "type": "symlink"}]


async def test_delete_symlink_removes_only_the_link(tmp_path: Path, make_harness: Maker) -> None:
    """delete_file on a symlink unlinks the link itself; the outside target stays."""
    h = await make_harness()
    (h.root / "link").symlink_to(h.outside / "secret.txt")
    await h.call("delete_file", path="link")
    assert not (h.root / "link").is_symlink()
    assert (h.outside / "secret.txt").read_text() == "OUTSIDE"


async def test_directory_swapped_for_symlink_between_calls(
    tmp_path: Path, make_harness: Maker
) -> None:
    """A directory that worked in one call and is a symlink in the next is refused in the next."""
    h = await make_harness()
    await h.call("write_file", path="sub/secret.txt", content="inside")
    assert await h.call("read_file", path="sub/secret.txt") == "inside"
    (h.root / "sub").rename(h.root / "sub.real")
    (h.root / "sub").symlink_to(h.outside)
    before = outside_snapshot(h)
    for tool in TOOLS:
        path = "sub" if tool == "list_dir" else "sub/secret.txt"
        await h.refuse(tool, **arguments_for(tool, path))
        assert h.last_record()["outcome"] == "denied"
    assert outside_snapshot(h) == before


async def test_concurrent_swap_never_reaches_outside(tmp_path: Path, make_harness: Maker) -> None:
    """While a thread flips a directory and a symlink to outside, nothing outside is touched."""
    h = await make_harness()
    sub, real = h.root / "sub", h.root / "sub.real"
    sub.mkdir()
    (sub / "secret.txt").write_text("inside")
    before = outside_snapshot(h)
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            for step in (
                lambda: sub.rename(real),
                lambda: sub.symlink_to(h.outside),
                sub.unlink,
                lambda: real.rename(sub),
            ):
                try:
                    step()
                except OSError:
                    if sub.is_dir() and not sub.is_symlink() and real.exists():
                        shutil.rmtree(sub, ignore_errors=True)  # a dir write_file made in the gap

    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    reads = refusals = 0
    deadline = time.monotonic() + 1.0
    try:
        while time.monotonic() < deadline:
            try:
                assert await h.call("read_file", path="sub/secret.txt") == "inside"
                reads += 1
            except ToolError:
                refusals += 1
            try:
                listing = await h.call("list_dir", path="sub")
                assert {e["name"] for e in listing["entries"]} <= {"secret.txt", "new.txt"}
            except ToolError:
                refusals += 1
            try:
                await h.call("write_file", path="sub/new.txt", content="w")
            except ToolError:
                refusals += 1
    finally:
        stop.set()
        flipper.join(5)
    assert outside_snapshot(h) == before
    assert not (h.outside / "new.txt").exists()
    assert refusals > 0
    records = [json.loads(line) for line in h.audit_path.read_text().splitlines()]
    records = [r for r in records if r["event"] == "tool_call"]
    assert all(r["outcome"] in ("ok", "denied", "error") for r in records)
    assert not any("internal error" in (r.get("error") or "") for r in records)


# -- content: size limit, binary, encodings ----------------------------------------------------


async def test_write_over_size_limit_refused(tmp_path: Path, make_harness: Maker) -> None:
    """Content larger than max_file_bytes is refused (text and base64) and no file appears."""
    h = await make_harness(max_file_bytes=16)
    assert await h.call("write_file", path="ok.txt", content="x" * 16) == {
        "path": "ok.txt",
        "bytes": 16,
    }
    assert "limit" in await h.refuse("write_file", path="big.txt", content="x" * 17)
    assert h.last_record()["outcome"] == "denied"
    assert "limit" in await h.refuse("write_file", path="big.txt", content="é" * 9)
    big = base64.b64encode(b"\x00" * 17).decode()
    assert "limit" in await h.refuse("write_file", path="big.bin", content=big, encoding="base64")
    assert sorted(os.listdir(h.root)) == ["ok.txt"]


async def test_read_over_size_limit_refused(tmp_path: Path, make_harness: Maker) -> None:
    """A file larger than max_file_bytes placed in the directory is not read."""
    h = await make_harness(max_file_bytes=16)
    (h.root / "big.txt").write_text("y" * 17)
    assert "limit" in await h.refuse("read_file", path="big.txt")
    assert h.last_record()["outcome"] == "denied"


async def test_binary_needs_base64(tmp_path: Path, make_harness: Maker) -> None:
    """Non-UTF-8 content read as text is a clear error pointing at encoding='base64'."""
    h = await make_harness()
    (h.root / "bin").write_bytes(b"\xff\xfe\x00\x01")
    assert "base64" in await h.refuse("read_file", path="bin")
    assert h.last_record()["outcome"] == "denied"
    assert await h.call("read_file", path="bin", encoding="base64") == "//4AAQ=="


async def test_base64_round_trip(tmp_path: Path, make_harness: Maker) -> None:
    """Bytes written with encoding='base64' are stored exactly and read back identically."""
    h = await make_harness()
    data = bytes(range(256))
    encoded = base64.b64encode(data).decode()
    await h.call("write_file", path="all.bin", content=encoded, encoding="base64")
    assert (h.root / "all.bin").read_bytes() == data
    assert await h.call("read_file", path="all.bin", encoding="base64") == encoded


@pytest.mark.parametrize("content", ["not base64!", "AAA", "AA==AA==", "AA\nAA==", "é"])
async def test_invalid_base64_refused(tmp_path: Path, make_harness: Maker, content: str) -> None:
    """Invalid base64 content is refused and nothing is written."""
    h = await make_harness()
    assert "base64" in await h.refuse(
        "write_file", path="x.bin", content=content, encoding="base64"
    )
    assert h.last_record()["outcome"] == "denied"
    assert os.listdir(h.root) == []


@pytest.mark.parametrize("tool", TOOLS)
async def test_lone_surrogate_path_is_denied_and_audited(
    tmp_path: Path, make_harness: Maker, tool: str
) -> None:
    """A path with a lone surrogate is refused as not valid Unicode and audited as denied."""
    h = await make_harness()
    assert "Unicode" in await h.refuse(tool, **arguments_for(tool, "a\ud800"))
    assert h.last_record()["outcome"] == "denied"
    assert os.listdir(h.root) == []


async def test_lone_surrogate_content_is_a_clear_error(tmp_path: Path, make_harness: Maker) -> None:
    """Text content that cannot be encoded as UTF-8 is a refused argument, not an internal error."""
    h = await make_harness()
    assert "UTF-8" in await h.refuse("write_file", path="x.txt", content="a\ud800b")
    assert h.last_record()["outcome"] == "denied"
    assert os.listdir(h.root) == []


# -- special files -----------------------------------------------------------------------------


async def test_fifo_is_not_opened_for_reading(tmp_path: Path, make_harness: Maker) -> None:
    """read_file of a FIFO returns 'not a regular file' at once instead of blocking on open."""
    h = await make_harness()
    fifo = h.root / "pipe"
    os.mkfifo(fifo)
    outcome: list[str] = []

    def read() -> None:
        import anyio

        async def run() -> None:
            outcome.append(await h.refuse("read_file", path="pipe"))

        anyio.run(run)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(2)
    if worker.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # release the blocked open
        worker.join(2)
        pytest.fail("read_file blocked opening a FIFO")
    assert outcome
    assert "not a regular file" in outcome[0]


async def test_fifo_is_not_written_or_listed_as_file(tmp_path: Path, make_harness: Maker) -> None:
    """write_file over a FIFO is refused; list_dir shows it as 'other'."""
    h = await make_harness()
    os.mkfifo(h.root / "pipe")
    assert "not a regular file" in await h.refuse("write_file", path="pipe", content="x")
    assert (await h.call("list_dir"))["entries"] == [{"name": "pipe", "type": "other"}]


async def test_base_path_may_be_a_symlink_chosen_by_operator(tmp_path: Path) -> None:
    """base_path itself is operator configuration: a symlink there is followed, below it is not."""
    real = tmp_path / "real-base"
    (real / "agents").mkdir(parents=True)
    (tmp_path / "link-base").symlink_to(real)
    config = {"base_path": str(tmp_path / "link-base")}
    async with module_harness(tmp_path / "h", "filesystem", config, mode="write") as h:
        await h.call("write_file", path="a.txt", content="x")
    assert (real / "agents" / "agent-01" / "a.txt").read_text() == "x"


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
async def test_device_is_not_read(tmp_path: Path, make_harness: Maker) -> None:
    """A character device in the directory is refused without reading from it."""
    h = await make_harness()
    os.mknod(h.root / "zero", 0o600 | 0o020000, os.makedev(1, 5))
    assert "not a regular file" in await h.refuse("read_file", path="zero")


async def test_delete_directory_refused(tmp_path: Path, make_harness: Maker) -> None:
    """delete_file refuses a directory, empty or not, and leaves it in place."""
    h = await make_harness()
    (h.root / "empty").mkdir()
    (h.root / "full").mkdir()
    (h.root / "full" / "f").write_text("x")
    for name in ("empty", "full"):
        assert "directory" in await h.refuse("delete_file", path=name)
        assert (h.root / name).is_dir()


async def test_write_over_directory_refused(tmp_path: Path, make_harness: Maker) -> None:
    """write_file onto an existing directory is refused and the directory stays."""
    h = await make_harness()
    (h.root / "d").mkdir()
    await h.refuse("write_file", path="d", content="x")
    assert (h.root / "d").is_dir()


async def test_file_used_as_directory_is_not_a_scope_violation(
    tmp_path: Path, make_harness: Maker
) -> None:
    """A regular file in the middle of a path is a plain error, not audited as a denied escape."""
    h = await make_harness()
    (h.root / "f").write_text("x")
    for tool in TOOLS:
        path = "f" if tool == "list_dir" else "f/x"
        assert "not a directory" in await h.refuse(tool, **arguments_for(tool, path))
        assert h.last_record()["outcome"] == "error"


async def test_missing_file_is_an_error_not_denied(tmp_path: Path, make_harness: Maker) -> None:
    """Reading or deleting a file that does not exist is outcome 'error' with a plain message."""
    h = await make_harness()
    for tool in ("read_file", "delete_file"):
        assert "no such file" in await h.refuse(tool, path="nope/nothing.txt")
        assert h.last_record()["outcome"] == "error"


# -- hard links: documented, not prevented -----------------------------------------------------


async def test_hard_link_is_in_scope_by_inode_but_writes_replace_it(
    tmp_path: Path, make_harness: Maker
) -> None:
    """A hard link someone else made is readable (same inode); writes and deletes never reach it.

    Reads follow the inode: that is the documented limit of path-based confinement. Writes replace
    the name atomically (a new inode), and delete unlinks only the name, so the outside file keeps
    its content either way.
    """
    h = await make_harness()
    os.link(h.outside / "secret.txt", h.root / "hard.txt")
    assert await h.call("read_file", path="hard.txt") == "OUTSIDE"
    await h.call("write_file", path="hard.txt", content="replaced")
    assert (h.outside / "secret.txt").read_text() == "OUTSIDE"
    assert (h.root / "hard.txt").read_text() == "replaced"
    os.unlink(h.root / "hard.txt")
    os.link(h.outside / "secret.txt", h.root / "hard.txt")
    await h.call("delete_file", path="hard.txt")
    assert (h.outside / "secret.txt").read_text() == "OUTSIDE"
