"""`scoped-mcp creds check` run as a user runs it: statuses, fixes, exit codes, never a value."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import yaml

from scoped_mcp.testing.harness import write_manifest as write_manifest_file
from tests.support import base_env, run_cli

FIXTURES = str(Path(__file__).resolve().parents[2])
MODULE = "tests.fixtures.leaky_modules.leaky:LeakyModule"


@pytest.fixture
def token() -> str:
    return "tok-" + secrets.token_urlsafe(24)


def manifest(tmp_path: Path, credentials: dict[str, object]) -> Path:
    path = tmp_path / "agent.yml"
    data = {"agent_type": "research", "modules": {"leak": {"type": MODULE}}}
    data["credentials"] = credentials
    write_manifest_file(path, data)
    return path


def check(tmp_path: Path, path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    environ = base_env(tmp_path / "home", PYTHONPATH=FIXTURES, **env)
    done = run_cli("creds", "check", "--manifest", str(path), *args, env=environ)
    return done.returncode, done.stdout, done.stderr


def secrets_file(tmp_path: Path, token: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secrets.yml"
    path.write_text(yaml.safe_dump({"API_TOKEN": token}))
    path.chmod(mode)
    return path


def test_all_good_exits_0_and_prints_no_value(tmp_path: Path, token: str) -> None:
    """Every key usable: exit 0, a table row with status ok, and the value nowhere."""
    path = manifest(tmp_path, {"source": "file", "path": str(secrets_file(tmp_path, token))})
    code, out, err = check(tmp_path, path)
    assert code == 0, err
    assert "API_TOKEN" in out
    assert " ok " in out
    assert "1 key (1 ok), 0 required unusable, 0 warnings: exit 0 (all good)" in out
    assert token not in out + err


def test_missing_env_key_exits_1_with_the_fix(tmp_path: Path) -> None:
    """A required env key that is not set: exit 1, status missing, and the export to fix it."""
    path = manifest(tmp_path, {"source": "env"})
    code, out, _ = check(tmp_path, path)
    assert code == 1
    assert "missing" in out
    assert "fix: export API_TOKEN=..." in out


def test_insecure_secrets_file_names_the_chmod(tmp_path: Path, token: str) -> None:
    """A group-readable secrets file: exit 1, status insecure, the exact chmod, no value."""
    file = secrets_file(tmp_path, token, mode=0o640)
    path = manifest(tmp_path, {"source": "file", "path": str(file)})
    code, out, err = check(tmp_path, path)
    assert code == 1
    assert "insecure" in out
    assert f"chmod 600 {file}" in out
    assert token not in out + err


def test_keyring_without_the_entry_says_how_to_set_it(tmp_path: Path) -> None:
    """A keyring with no entry for the key: exit 1, status missing, the keyring set command."""
    keyring = {
        "service": "scoped-mcp/{agent_type}",
        "backend": "keyrings.alt.file.PlaintextKeyring",
    }
    path = manifest(tmp_path, {"source": "keyring", "keyring": keyring})
    code, out, _ = check(tmp_path, path, XDG_DATA_HOME=str(tmp_path / "data"))
    assert code == 1
    assert "missing" in out
    assert "keyring set 'scoped-mcp/research' 'API_TOKEN'" in out
    assert "PlaintextKeyring" in out


def test_json_output_is_stable_and_valueless(tmp_path: Path, token: str) -> None:
    """--json prints the documented schema: version, exit code, summary, one entry per key."""
    path = manifest(tmp_path, {"source": "file", "path": str(secrets_file(tmp_path, token))})
    code, out, err = check(tmp_path, path, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["schema_version"] == 1
    assert report["exit_code"] == 0
    assert report["summary"] == {"ok": 1}
    assert [(k["module"], k["key"], k["status"], k["required"]) for k in report["keys"]] == [
        ("leak", "API_TOKEN", "ok", True)
    ]
    assert set(report["keys"][0]) == {
        "module",
        "key",
        "required",
        "source",
        "backend",
        "status",
        "detail",
        "fix",
        "facts",
    }
    assert token not in out + err


def test_invalid_manifest_exits_3(tmp_path: Path) -> None:
    """A manifest that does not validate: exit 3 and the field path on stderr."""
    path = tmp_path / "agent.yml"
    path.write_text("agent_type: research\nmodules:\n  leak: {type: x, mode: sideways}\n")
    code, out, err = check(tmp_path, path)
    assert code == 3
    assert "modules.leak" in err
    assert out == ""


def test_reference_with_agent_id_needs_an_agent(tmp_path: Path, token: str) -> None:
    """References that use {agent_id} need --agent-id or AGENT_ID, and then expand with it."""
    file = tmp_path / "agent-07.yml"
    file.write_text(yaml.safe_dump({"API_TOKEN": token}))
    file.chmod(0o600)
    path = manifest(tmp_path, {"source": "file", "path": str(tmp_path / "{agent_id}.yml")})
    code, _, err = check(tmp_path, path)
    assert code == 3
    assert "--agent-id" in err
    code, out, err = check(tmp_path, path, "--agent-id", "agent-07")
    assert code == 0, out + err
    assert "agent-07.yml" in out
