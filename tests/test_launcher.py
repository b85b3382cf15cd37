"""The launcher every agent start runs: what it imports, which starts it hands on, its wire codec.

With a zygote the launcher waits as long as its agent runs, once per agent; each library it
imports is private memory in every one of them (measured: 8.2 MiB per launcher with the CLI's
imports, 4.5 MiB without).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scoped_mcp import plugins, zygote
from scoped_mcp.launcher import stdio_serve

HEAVY = ("argparse", "json", "re", "socket", "signal", "hashlib", "pathlib", "typing", "enum")


def test_the_launcher_imports_nothing_heavy() -> None:
    code = "import sys, scoped_mcp.launcher; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    )
    loaded = set(done.stdout.split())
    assert "scoped_mcp.zygote" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    assert not any(name.startswith(("fastmcp", "mcp", "pydantic")) for name in loaded)


@pytest.mark.parametrize(
    ("argv", "plain"),
    [
        (["--manifest", "m.yml"], True),
        (["serve", "--manifest", "m.yml"], True),
        (["--manifest=m.yml"], True),
        (["serve", "--manifest=m.yml"], True),
        (["--manifest="], False),
        (["--manifest", "-m.yml"], False),
        (["--manifest"], False),
        (["serve", "--manifest", "m.yml", "--http", "8080"], False),
        (["--man", "m.yml"], False),  # argparse's abbreviation: decided in-process
        (["--manifest", "a.yml", "--manifest", "b.yml"], False),
        (["tools", "--manifest", "m.yml"], False),
        (["--help"], False),
        ([], False),
    ],
)
def test_only_a_plain_stdio_serve_goes_to_a_zygote(argv: list[str], plain: bool) -> None:
    assert stdio_serve(argv) is plain


def test_an_abbreviated_serve_still_serves_in_process(tmp_path: Path) -> None:
    """What the launcher leaves to argparse behaves as before: a bad manifest path is refused
    naming the file, exit 2, for the abbreviated spelling as for the plain one."""
    script = Path(sys.executable).with_name("scoped-mcp")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AGENT_ID": "a1"}
    for flag in ("--manifest", "--man"):
        done = subprocess.run(
            [str(script), flag, str(tmp_path / "missing.yml")],
            capture_output=True,
            text=True,
            env={**env, "AGENT_TYPE": "research"},
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert "missing.yml: cannot read manifest" in done.stderr


@pytest.mark.parametrize(
    "value",
    [
        {"argv": ["--manifest", "m.yml"], "umask": 18, "cwd": "/tmp/é"},
        {"environ": {"K": 'v"q\\\n\t\x00', "S": "\udcff", "E": "☃" * 3}},
        {"exit": 0},
        {"signal": 15},
        {"nested": [1, -2, True, False, None, [], {}]},
    ],
)
def test_the_wire_codec_is_json(value: dict[str, object]) -> None:
    text = zygote.encode(value)
    assert text == json.dumps(value)
    assert json.loads(text) == value
    assert zygote.decode(text) == value


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} {}', "NaN", "[1, Infinity]", "'x'"])
def test_the_wire_decoder_refuses_what_is_not_one_json_value(text: str) -> None:
    with pytest.raises(ValueError, match=r"not JSON|extra data|Expecting"):
        zygote.decode(text)


def test_installed_plugins_are_read_again_when_the_import_path_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    group = "scoped_mcp_test.launcher_plugins"
    assert plugins.installed(group) == ()
    info = site / "late_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: late-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\nlate = late_plugin:Late\n")
    assert [entry.name for entry in plugins.installed(group)] == ["late"]
    assert plugins.installed(group) is plugins.installed(group)  # kept while nothing changes
