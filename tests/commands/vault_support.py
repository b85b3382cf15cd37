"""Helpers for running `scoped-mcp creds check` against the OpenBao fixtures as a user would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scoped_mcp.testing.harness import write_manifest as write_manifest_file
from tests.support import base_env, run_cli

REPO = str(Path(__file__).resolve().parents[2])
LEAKY = {"type": "tests.fixtures.leaky_modules.leaky:LeakyModule"}
TOKEN_ENV = "AGENT_VAULT_TOKEN"


def write_manifest(
    tmp_path: Path,
    addr: str,
    *,
    keys: dict[str, str] | None = None,
    agent_type: str = "research",
    **vault: Any,
) -> Path:
    """A manifest whose one module needs API_TOKEN, by default from the type's KV v2 secret."""
    settings: dict[str, Any] = {
        "addr": addr,
        "auth": "token",
        "token_env": TOKEN_ENV,
        "path": "secret/scoped-mcp/{agent_type}",
        "timeout": 2,
        **vault,
    }
    data = {
        "agent_type": agent_type,
        "modules": {"leak": LEAKY},
        "credentials": {"source": "vault", "vault": settings, "keys": keys or {}},
    }
    path = tmp_path / "agent.yml"
    write_manifest_file(path, data)
    return path


def creds_check(tmp_path: Path, manifest: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """Run the command in a clean environment; return exit code, stdout, stderr."""
    environ = base_env(tmp_path / "home", PYTHONPATH=REPO, **env)
    done = run_cli("creds", "check", "--manifest", str(manifest), *args, env=environ)
    return done.returncode, done.stdout, done.stderr


def creds_json(tmp_path: Path, manifest: Path, *args: str, **env: str) -> tuple[int, Any, str]:
    """``creds_check`` with --json, the report parsed; also returns the raw text."""
    code, out, err = creds_check(tmp_path, manifest, "--json", *args, **env)
    return code, json.loads(out), out + err


def assert_nowhere(text: str, *values: str) -> None:
    """No secret value appears in ``text``, whole or as its second half."""
    for value in values:
        assert value not in text, "a secret value was printed"
        assert value[len(value) // 2 :] not in text, "part of a secret value was printed"
