"""The sandbox's manifest contract: refusals name the field and the fix; ``creds check`` warns
about ``sandbox: off``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from scoped_mcp.modules.mcp_proxy import McpProxyConfig
from scoped_mcp.modules.mcp_proxy.sandbox import SandboxConfig
from tests.modules.mcp_proxy_sandbox.support import escape_manifest
from tests.support import base_env, run_cli

BASE: dict[str, Any] = {"command": "/usr/bin/true", "tools": {"a": "read"}}


def validate(tmp_path: Path, **config: Any) -> McpProxyConfig:
    return McpProxyConfig.model_validate({**BASE, **config}, context={"base_dir": tmp_path})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"sandbox": None}, "give 'off' or a mapping"),
        ({"sandbox": "maybe"}, "sandbox"),
        ({"sandbox": {"network": "all"}}, "network"),
        ({"sandbox": {"network": {"allow": ["example.org"]}}}, "must be host:port"),
        ({"sandbox": {"network": {"allow": ["::1:80"]}}}, r"\[addr\]:port"),
        ({"sandbox": {"network": {"allow": ["169.254.169.254:80"]}}}, "never allowed"),
        ({"sandbox": {"network": {"allow": []}}}, "at least 1"),
        ({"sandbox": {"read_paths": ["/no/such/dir"]}}, "does not exist"),
        ({"sandbox": {"read_paths": ["/"]}}, "whole filesystem"),
        ({"sandbox": {"limits": {"memory_mb": 1}}}, "greater than or equal"),
        ({"sandbox": {"unknown": 1}}, "Extra inputs"),
        ({"args": ["--token=${cred:T}"]}, r"\$\{file:NAME\}"),
        ({"env": {"X": "${file:nope}"}}, "'files' has no entry 'nope'"),
        ({"files": {"a/b": "${cred:T}"}}, "a file name"),
        ({"files": {"t": "${file:t}"}}, r"\$\{cred:KEY\}"),
    ],
)
def test_refusals_name_the_problem(tmp_path: Path, config: dict[str, Any], message: str) -> None:
    """Each malformed sandbox or files setting is refused with a message naming it."""
    with pytest.raises(ValidationError, match=message):
        validate(tmp_path, **config)


def test_a_path_holding_the_manifest_directory_is_refused(tmp_path: Path) -> None:
    """Listing the manifest's directory (or a parent) would show the manifest and its secrets."""
    inner = tmp_path / "data"
    inner.mkdir()
    with pytest.raises(ValidationError, match="contains the manifest's directory"):
        validate(tmp_path, sandbox={"write_paths": [str(tmp_path.parent)]})
    assert validate(tmp_path, sandbox={"read_paths": [str(inner)]}).sandbox != "off"


def test_relative_paths_resolve_against_the_manifest(tmp_path: Path) -> None:
    """A relative read path is the manifest's subdirectory, resolved."""
    (tmp_path / "data").mkdir()
    config = validate(tmp_path, sandbox={"read_paths": ["data"]})
    assert isinstance(config.sandbox, SandboxConfig)
    assert config.sandbox.read_paths == [tmp_path.resolve() / "data"]


def test_yaml_off_and_on_spellings(tmp_path: Path) -> None:
    """YAML's ``off`` (a boolean) opts out; ``on`` and an absent field give the defaults."""
    off = yaml.safe_load("sandbox: off")["sandbox"]
    on = yaml.safe_load("sandbox: on")["sandbox"]
    assert validate(tmp_path, sandbox=off).sandbox == "off"
    assert validate(tmp_path, sandbox=on).sandbox == SandboxConfig()
    assert validate(tmp_path).sandbox == SandboxConfig()


def test_sandbox_and_files_are_for_stdio_upstreams(tmp_path: Path) -> None:
    """An HTTP upstream has no child to sandbox: the fields are refused there."""
    with pytest.raises(ValidationError, match="'command' upstream only"):
        McpProxyConfig.model_validate(
            {"url": "https://h/mcp", "tools": {"a": "read"}, "sandbox": "off"}
        )


def test_file_contents_name_required_credentials(tmp_path: Path) -> None:
    """A key used only in a credential file is still a required credential (preflight)."""
    config = validate(tmp_path, files={"t": "token=${cred:FILE_ONLY}"}, args=["${file:t}"])
    assert config.credential_keys() == ["FILE_ONLY"]


def test_creds_check_warns_about_sandbox_off(tmp_path: Path) -> None:
    """``creds check`` names the unconfined module among its warnings (exit 2)."""
    manifest = escape_manifest(tmp_path, sandbox="off")
    done = run_cli("creds", "check", "--manifest", str(manifest), env=base_env(tmp_path / "home"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "warning: module up: sandbox: off: the upstream runs unconfined" in done.stdout
    sandboxed = escape_manifest(tmp_path, command=sys.executable)
    done = run_cli("creds", "check", "--manifest", str(sandboxed), env=base_env(tmp_path / "home"))
    assert done.returncode == 0, done.stdout + done.stderr
