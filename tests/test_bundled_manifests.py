"""Bundled manifests: valid, with the tools and credentials manifests/README.md lists."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests.support import ServerHandle, base_env, run_cli

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"
BUNDLED = sorted(MANIFESTS.glob("*.yml"))


def documented() -> dict[str, tuple[str, list[str], dict[str, bool]]]:
    """manifests/README.md's table: file -> (agent_type, tools, {credential: required})."""
    rows: dict[str, tuple[str, list[str], dict[str, bool]]] = {}
    for line in (MANIFESTS / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        name, agent_type, tools, creds = cells
        keys = {
            key.removesuffix(" (optional)"): not key.endswith("(optional)")
            for key in (k.strip() for k in creds.split(","))
            if key and key != "none"
        }
        rows[name.strip("`")] = (agent_type, [t.strip() for t in tools.split(",")], keys)
    return rows


def test_every_bundled_manifest_is_documented() -> None:
    """Each manifests/*.yml has exactly one row in manifests/README.md, and vice versa."""
    assert sorted(documented()) == [path.name for path in BUNDLED]
    assert {"research-agent.yml", "build-agent.yml", "ops-agent.yml", "notifier-agent.yml"} <= {
        path.name for path in BUNDLED
    }


def test_all_bundled_manifests_validate(tmp_path: Path) -> None:
    """scoped-mcp manifest validate passes for every bundled manifest at once."""
    done = run_cli("manifest", "validate", *map(str, BUNDLED), env=base_env(tmp_path / "h"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": ok") == len(BUNDLED)


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_tools_match_the_documented_list(tmp_path: Path, path: Path) -> None:
    """scoped-mcp tools --manifest prints exactly the tools manifests/README.md lists, in order."""
    done = run_cli("tools", "--manifest", str(path), "--json", env=base_env(tmp_path / "h"))
    assert done.returncode == 0, done.stderr
    tools = [row["name"] for row in json.loads(done.stdout)["tools"]]
    assert tools == documented()[path.name][1]


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_credentials_match_the_documented_list(tmp_path: Path, path: Path) -> None:
    """creds check lists exactly the documented keys (required or optional), from env."""
    env = base_env(tmp_path / "h")
    done = run_cli("creds", "check", "--manifest", str(path), "--agent-id", "a1", "--json", env=env)
    report = json.loads(done.stdout)
    keys = {entry["key"]: entry["required"] for entry in report["keys"]}
    assert keys == documented()[path.name][2]
    assert all(entry["source"] == f"env:{entry['key']}" for entry in report["keys"])
    assert done.returncode == (1 if any(keys.values()) else 0)


@pytest.mark.anyio
async def test_research_manifest_runs_over_stdio_with_no_services(
    tmp_path: Path, serve: Callable[..., AbstractAsyncContextManager[ServerHandle]]
) -> None:
    """The bundled research manifest, unchanged, serves its four tools with nothing else running."""
    copy = tmp_path / "checkout" / "manifests" / "research-agent.yml"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(MANIFESTS / "research-agent.yml", copy)
    async with serve(copy, agent_id="research-01") as server:
        assert sorted(await server.tool_names()) == sorted(documented()["research-agent.yml"][1])
        assert await server.call("sqlite_list_tables") is not None
        agent_dir = tmp_path / "checkout" / "data" / "agents" / "research-01"
        (agent_dir / "notes.txt").write_text("hello")
        assert "hello" in str(await server.call("filesystem_read_file", {"path": "notes.txt"}))
