"""``approvals:`` is validated in full: at load (the block itself) and at build (against the tools).

Each misconfiguration stops start-up with the field and the fix; a manifest without the block
loads nothing of the approvals package but its config model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scoped_mcp import manifest as manifest_file
from scoped_mcp.errors import ConfigError, ManifestError
from scoped_mcp.identity import AgentContext
from scoped_mcp.server import build
from scoped_mcp.testing.harness import write_manifest
from tests.approvals.support import AGENT_ID, AGENT_TYPE, filesystem_manifest, server_env
from tests.contract_support import INITIALIZED, call, child_env, initialize
from tests.support import base_env, run_cli

RULE = {"tools": ["filesystem_write_file"]}


def load_error(tmp_path: Path, approvals: dict[str, Any]) -> str:
    path, _root = filesystem_manifest(tmp_path, approvals)
    with pytest.raises(ManifestError) as caught:
        manifest_file.load(path)
    return caught.value.diagnostics()


@pytest.mark.parametrize(
    ("approvals", "expected"),
    [
        ({"rules": []}, "approvals.rules: List should have at least 1 item"),
        ({"rules": [{"wait": 5}]}, "a rule needs tools, modules or mode"),
        ({"rules": [{"tools": ["../x"]}]}, "a tool name or glob"),
        ({"rules": [{**RULE, "notify": ["ntfy"]}]}, "rules.0.notify: channel 'ntfy' is not"),
        (
            {"approvers": {"matrix": ["@a:example.org"]}, "rules": [RULE]},
            "Matrix approvers need approvals.channels.matrix",
        ),
        ({"approvers": {"cli": False}, "rules": [RULE]}, "nobody may approve"),
        ({"wait": 100, "lifetime": 10, "rules": [RULE]}, "lifetime (10) is shorter than wait"),
        ({"rules": [RULE], "timeout": 3}, "approvals.timeout: unknown field; allowed here"),
        (
            {"channels": {"matrix": {"room": "#alias:example.org"}}, "rules": [RULE]},
            "approvals.channels.matrix.room: Value error, must be a room id",
        ),
        (
            {"channels": {"ntfy": {"topic": "shared"}}, "rules": [RULE]},
            "approvals.channels.ntfy.topic: Value error, must contain {agent_id}",
        ),
        (
            {"channels": {"ntfy": {"topic": "a-{agent_id}", "credentials": {"X": "env:X"}}},
             "rules": [RULE]},
            "credentials.X: not a key of this channel",
        ),
        (
            {"approvers": {"matrix": ["alice"]}, "rules": [RULE]},
            "'alice' is not a Matrix user id",
        ),
    ],
)  # fmt: skip
def test_invalid_blocks_are_refused_at_load(
    tmp_path: Path, approvals: dict[str, Any], expected: str
) -> None:
    """Each broken block is refused when the manifest loads, naming the field."""
    message = load_error(tmp_path, approvals)
    assert expected in message
    assert "gated.yml:" in message


def build_error(tmp_path: Path, approvals: dict[str, Any], env: dict[str, str]) -> str:
    audit = {"path": str(tmp_path / "audit.jsonl")}
    path, _root = filesystem_manifest(tmp_path, approvals, audit=audit)
    manifest = manifest_file.load(path)
    with pytest.raises(ConfigError) as caught:
        build(manifest, AgentContext(AGENT_ID, AGENT_TYPE), env)
    return caught.value.diagnostics()


def test_rules_are_checked_against_the_tools_and_the_runtime_dir(tmp_path: Path) -> None:
    """A rule selecting no tool, an unknown module, an ntfy topic too long once expanded, or no
    runtime directory stops start-up."""
    env = server_env(tmp_path)
    nothing = build_error(tmp_path, {"rules": [{"tools": ["filesytem_*"]}]}, env)
    assert "approvals.rules.0: selects no tool of this manifest" in nothing
    assert "filesystem_write_file" in nothing
    unknown = build_error(tmp_path, {"rules": [{"modules": ["sqlite"]}]}, env)
    assert "approvals.rules.0.modules: 'sqlite' is not a module of this manifest" in unknown
    assert "fix: use one of: filesystem" in unknown
    long_topic = {"channels": {"ntfy": {"topic": "x" * 60 + "-{agent_id}"}}, "rules": [RULE]}
    too_long = build_error(tmp_path, long_topic, env)
    assert "approvals.channels.ntfy.topic:" in too_long
    assert "longer than 64 characters for agent 'gated-01'" in too_long
    no_dir = build_error(tmp_path, {"rules": [RULE]}, {})
    assert "approvals: the control socket needs a private runtime directory" in no_dir
    assert "fix: set XDG_RUNTIME_DIR" in no_dir


PROBE = """
import sys
from scoped_mcp.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.startswith(("scoped_mcp.approvals",
    "scoped_mcp.credentials.per_call", "scoped_mcp.commands.approvals")))
sys.stderr.write("\\nLOADED=" + ",".join(loaded) + "\\n")
sys.exit(code)
"""


def test_a_manifest_without_approvals_loads_only_the_config_model(tmp_path: Path) -> None:
    """Serving a call without ``approvals:`` imports the package's config model and nothing else."""
    data = tmp_path / "data"
    data.mkdir()
    path = tmp_path / "plain.yml"
    path.write_text(
        f"agent_type: {AGENT_TYPE}\n"
        f"modules:\n  filesystem:\n    mode: write\n    config:\n      base_path: {data}\n"
    )
    messages = [initialize(), INITIALIZED, call(2, "filesystem_list_dir", path=".")]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "--manifest", str(path)],
        input="".join(json.dumps(m) + "\n" for m in messages),
        env=child_env(tmp_path / "home", AGENT_ID=AGENT_ID, AGENT_TYPE=AGENT_TYPE),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"id": 2' in done.stdout or '"id":2' in done.stdout
    [line] = [x for x in done.stderr.splitlines() if x.startswith("LOADED=")]
    assert line == "LOADED=scoped_mcp.approvals,scoped_mcp.approvals.config"


def test_a_missing_channel_key_is_named_by_creds_check_and_stops_start_up(
    tmp_path: Path,
) -> None:
    """Channel keys are preflighted like a module's: creds check and start-up name NTFY_URL."""
    approvals = {"channels": {"ntfy": {"topic": "a-{agent_id}"}}, "rules": [RULE]}
    audit = {"path": str(tmp_path / "audit.jsonl")}
    path, _root = filesystem_manifest(tmp_path, approvals, audit=audit)
    identity = {"AGENT_ID": AGENT_ID, "AGENT_TYPE": AGENT_TYPE}
    env = base_env(tmp_path / "home", **identity, **server_env(tmp_path))
    checked = run_cli("creds", "check", "--manifest", str(path), env=env)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "NTFY_URL" in checked.stdout
    assert "approvals.ntfy" in checked.stdout
    started = run_cli("--manifest", str(path), env=env)
    assert started.returncode == 2
    assert "NTFY_URL (module approvals.ntfy, source env:NTFY_URL): missing" in started.stderr


def test_manifest_validate_checks_the_rules_against_the_tools(tmp_path: Path) -> None:
    """``manifest validate`` refuses a rule that selects no tool, as start-up does."""
    path, _root = filesystem_manifest(tmp_path, {"rules": [{"tools": ["filesytem_*"]}]})
    done = run_cli("manifest", "validate", str(path), env=base_env(tmp_path / "home"))
    assert done.returncode == 2
    assert "approvals.rules.0: selects no tool of this manifest" in done.stderr
    good, _root = filesystem_manifest(tmp_path, {"rules": [RULE]})
    assert (
        run_cli("manifest", "validate", str(good), env=base_env(tmp_path / "home")).returncode == 0
    )


def test_a_gated_key_read_at_start_up_stops_the_server_saying_why(tmp_path: Path) -> None:
    """Every tool of the module gated: its keys are per-call, so reading one in startup fails
    start-up with the reason and the fix, and no value is read."""
    data = {
        "agent_type": AGENT_TYPE,
        "modules": {
            "pgheld": {
                "type": "db_modules.pgheld:PgHeldModule",
                "mode": "write",
                "config": {"port": 9, "read_at_startup": True},
            }
        },
        "audit": {"path": str(tmp_path / "audit.jsonl")},
        "approvals": {"rules": [{"modules": ["pgheld"]}]},
    }
    path = write_manifest(tmp_path / "startup-read.yml", data)
    env = child_env(
        tmp_path / "home",
        AGENT_ID=AGENT_ID,
        AGENT_TYPE=AGENT_TYPE,
        PG_USER="startup-user-value",
        PG_PASSWORD="startup-password-value",
        **server_env(tmp_path),
    )
    done = run_cli("--manifest", str(path), env=env)
    assert done.returncode == 2
    assert "PG_USER is leased per approved call (every tool of module 'pgheld'" in done.stderr
    assert "cannot be read outside one, e.g. at start-up" in done.stderr
    assert "fix: a module that needs its credential before any call" in done.stderr
    assert "startup-user-value" not in done.stderr
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line]
    # The audit log was open (a read would have written a "fetched" record): none was.
    assert [r for r in records if r.get("event") == "credential"] == []
