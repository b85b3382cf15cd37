"""The scoped-mcp command line as an operator or an agent host runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scoped_mcp import __version__
from scoped_mcp.testing.harness import write_manifest
from tests.contract_support import RawServer, assert_json_rpc_only, child_env, request
from tests.support import run_cli

PROBE = {"type": "custom_modules.probe:ProbeModule"}


def _manifest(path: Path, data: dict[str, object]) -> Path:
    write_manifest(path, data)
    return path


@pytest.fixture
def build_manifest(tmp_path: Path) -> Path:
    """A manifest with the filesystem module in write mode and a probe module in read mode."""
    return _manifest(
        tmp_path / "build.yml",
        {
            "agent_type": "build",
            "modules": {
                "filesystem": {"mode": "write", "config": {"base_path": "data"}},
                "probe": PROBE,
            },
        },
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return child_env(tmp_path / "home", AGENT_ID="build-01", AGENT_TYPE="build")


BUILD_TOOLS = [
    ("filesystem_read_file", "filesystem", "read"),
    ("filesystem_list_dir", "filesystem", "read"),
    ("filesystem_write_file", "filesystem", "write"),
    ("filesystem_delete_file", "filesystem", "write"),
    ("probe_echo", "probe", "read"),
    ("probe_scoped_key", "probe", "read"),
    ("probe_loaded_modules", "probe", "read"),
    ("probe_credential_length", "probe", "read"),
    ("probe_boom", "probe", "read"),
    ("probe_deny", "probe", "read"),
    ("probe_backend_down", "probe", "read"),
    ("probe_nap", "probe", "read"),
]


def test_help_describes_the_commands(env: dict[str, str]) -> None:
    """--help exits 0 and names the serve, tools and manifest commands and --manifest."""
    result = run_cli("--help", env=env)
    assert result.returncode == 0
    for word in ("serve", "tools", "manifest", "--manifest", "--version"):
        assert word in result.stdout
    assert result.stderr == ""


def test_version_prints_the_package_version(env: dict[str, str]) -> None:
    """--version prints 'scoped-mcp X.Y.Z' and exits 0."""
    result = run_cli("--version", env=env)
    assert result.returncode == 0
    assert result.stdout.strip() == f"scoped-mcp {__version__}"


@pytest.mark.parametrize(
    "args",
    [pytest.param([], id="bare"), pytest.param(["serve"], id="serve")],
)
def test_missing_manifest_is_a_usage_error(env: dict[str, str], args: list[str]) -> None:
    """Serving without --manifest is a usage error: exit 2, usage on stderr, stdout empty."""
    result = run_cli(*args, env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "usage: scoped-mcp" in result.stderr
    assert "--manifest" in result.stderr


@pytest.mark.parametrize(
    "prefix",
    [pytest.param([], id="default-command"), pytest.param(["serve"], id="serve-command")],
)
def test_both_spellings_serve(
    build_manifest: Path, env: dict[str, str], tmp_path: Path, prefix: list[str]
) -> None:
    """`scoped-mcp --manifest M` and `scoped-mcp serve --manifest M` both serve MCP on stdio."""
    server = RawServer.start([*prefix, "--manifest", str(build_manifest)], env=env, cwd=tmp_path)
    try:
        info = server.handshake()
        assert info["serverInfo"]["name"] == "scoped-mcp"
        tools = server.ask(request(2, "tools/list"))["result"]["tools"]
        assert sorted(t["name"] for t in tools) == sorted(name for name, _, _ in BUILD_TOOLS)
        assert server.close() == 0
    finally:
        server.kill()
    assert_json_rpc_only(server.stdout_lines)


def test_tools_lists_exactly_the_registered_tools(
    build_manifest: Path, env: dict[str, str]
) -> None:
    """`tools --manifest M` prints one line per tool (name, mode, description) in order."""
    result = run_cli("tools", "--manifest", str(build_manifest), env=env)
    assert result.returncode == 0, result.stderr
    rows = [line.split(None, 2) for line in result.stdout.splitlines()]
    assert [(name, mode) for name, mode, _ in rows] == [(n, m) for n, _, m in BUILD_TOOLS]
    assert rows[4][2] == "Return the text repeated."


def test_tools_json_is_stable_and_complete(build_manifest: Path, env: dict[str, str]) -> None:
    """`tools --json` gives {"tools": [{name, module, mode, description, parameters}]},
    identical run to run; a module's parameter without a description has an empty one."""
    first = run_cli("tools", "--manifest", str(build_manifest), "--json", env=env)
    second = run_cli("tools", "--manifest", str(build_manifest), "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    data = json.loads(first.stdout)
    assert list(data) == ["tools"]
    assert [(t["name"], t["module"], t["mode"]) for t in data["tools"]] == BUILD_TOOLS
    keys = {"name", "module", "mode", "description", "parameters"}
    assert all(set(t) == keys for t in data["tools"])
    assert data["tools"][4]["description"] == "Return the text repeated."
    assert data["tools"][4]["parameters"] == [
        {"name": "text", "type": "string", "required": True, "description": ""},
        {"name": "times", "type": "integer", "required": False, "description": "", "default": 1},
    ]


def test_tools_read_mode_lists_only_read_tools(tmp_path: Path, env: dict[str, str]) -> None:
    """A module in read mode lists its read tools only."""
    manifest = _manifest(
        tmp_path / "r.yml",
        {
            "agent_type": "r",
            "modules": {"filesystem": {"mode": "read", "config": {"base_path": "d"}}},
        },
    )
    result = run_cli("tools", "--manifest", str(manifest), "--json", env=env)
    names = [t["name"] for t in json.loads(result.stdout)["tools"]]
    assert names == ["filesystem_read_file", "filesystem_list_dir"]


def test_tools_with_invalid_manifest_fails_on_stderr(tmp_path: Path, env: dict[str, str]) -> None:
    """`tools` on an invalid manifest exits 2 with the reason on stderr and nothing on stdout."""
    manifest = _manifest(tmp_path / "bad.yml", {"agent_type": "x", "modules": {"nope": {}}})
    result = run_cli("tools", "--manifest", str(manifest), "--json", env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "unknown module 'nope'" in result.stderr


def test_validate_reports_each_manifest(
    build_manifest: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    """`manifest validate A B C` reports every file and exits 2 when any is invalid."""
    bad = _manifest(tmp_path / "bad.yml", {"agent_type": "x", "colour": "red"})
    missing = tmp_path / "missing.yml"
    result = run_cli("manifest", "validate", str(build_manifest), str(bad), str(missing), env=env)
    assert result.returncode == 2
    assert f"{build_manifest}: ok" in result.stdout
    assert f"{bad}: invalid" in result.stderr
    assert "colour: unknown field" in result.stderr
    assert f"{missing}: invalid" in result.stderr
    assert "No such file or directory" in result.stderr


def test_validate_all_valid_exits_zero(build_manifest: Path, env: dict[str, str]) -> None:
    """`manifest validate` exits 0 when every manifest is valid."""
    result = run_cli("manifest", "validate", str(build_manifest), str(build_manifest), env=env)
    assert result.returncode == 0
    assert result.stdout.count(": ok") == 2
    assert result.stderr == ""


def test_validate_checks_module_configuration(tmp_path: Path, env: dict[str, str]) -> None:
    """`manifest validate` checks each module's config block, not just the manifest's shape."""
    manifest = _manifest(
        tmp_path / "m.yml", {"agent_type": "x", "modules": {"filesystem": {"config": {}}}}
    )
    result = run_cli("manifest", "validate", str(manifest), env=env)
    assert result.returncode == 2
    assert "modules.filesystem.config.base_path: Field required" in result.stderr


def test_the_parser_is_built_once_and_parses_each_command_line_afresh() -> None:
    """One parser per process (a zygote builds it for its children); what one command line
    set never shows in the next one's namespace."""
    from scoped_mcp.cli import command_parser

    parser = command_parser()
    assert command_parser() is parser
    first = parser.parse_args(["serve", "--manifest", "a.yml", "--http", "127.0.0.1:0"])
    second = parser.parse_args(["--manifest", "b.yml"])
    assert (first.command, first.serve_manifest, first.http) == ("serve", "a.yml", "127.0.0.1:0")
    assert (second.command, second.manifest) == (None, "b.yml")
    assert getattr(second, "http", None) is None
    assert getattr(second, "serve_manifest", None) is None
