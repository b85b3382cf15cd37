"""Each backend validates its own part of ``credentials:`` when the manifest is loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scoped_mcp.credentials.backends.file import FileSettings
from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.errors import ManifestError
from scoped_mcp.manifest import load

ACME = """
from typing import ClassVar

from pydantic import BaseModel

from scoped_mcp.credentials.backends.interface import (
    BackendContext, Fetched, Finding, SecretBackend,
)
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.manifest import StrictModel


class AcmeSettings(StrictModel):
    url: str = "https://vault.acme.test"
    project: str | None = None


class AcmeBackend(SecretBackend):
    schemes: ClassVar[tuple[str, ...]] = ("acme",)
    config_block: ClassVar[str | None] = "acme"
    config_model: ClassVar[type[BaseModel] | None] = AcmeSettings
    field_required: ClassVar[bool] = True
    source_field: ClassVar[str | None] = "project"

    def __init__(self, settings, context: BackendContext) -> None:
        self.settings = settings

    def fetch(self, ref: SecretRef) -> Fetched:
        return Fetched({ref.field: "acme-value"})

    def check(self, ref: SecretRef) -> Finding:
        return Finding("ok")
"""

PROBE = """
import sys
from scoped_mcp.credentials.backends import Catalog, load_backends
from scoped_mcp.credentials.backends.interface import BackendContext
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import load

manifest = load(sys.argv[1])
settings = manifest.credentials.settings
cls = Catalog().get("acme")
ref = cls.default_ref("acme", "API_KEY", settings.get("acme"), AgentContext("a-1", "research"))
backends = load_backends(["acme"], settings, BackendContext(AgentContext("a-1", "research"), {}))
print(settings["acme"].project, ref, backends["acme"].fetch(ref).values["API_KEY"])
"""


def _probe(manifest: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run PROBE on ``manifest`` in a fresh interpreter whose path holds the acme package."""
    command = [sys.executable, "-c", PROBE, str(manifest)]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def _manifest(tmp_path: Path, credentials: str) -> Path:
    path = tmp_path / "m.yml"
    path.write_text("agent_type: research\ncredentials:\n" + textwrap.indent(credentials, "  "))
    return path


def test_a_bad_vault_block_is_reported_with_its_field_and_line(tmp_path: Path) -> None:
    """An unknown value in credentials.vault names the field path and its line at load time."""
    path = _manifest(tmp_path, "source: env\nvault:\n  addr: http://127.0.0.1:8200\n  auth: tokn\n")
    with pytest.raises(ManifestError) as info:
        load(path)
    assert f"{path}:6: credentials.vault.auth: Input should be 'token' or 'approle'" in str(
        info.value
    )


def test_an_unknown_credentials_key_lists_every_backends_keys(tmp_path: Path) -> None:
    """A misspelt block is unknown, and the message lists the generic and the backends' keys."""
    path = _manifest(tmp_path, "vualt: {}\n")
    with pytest.raises(ManifestError) as info:
        load(path)
    text = str(info.value)
    assert f"{path}:3: credentials.vualt: unknown field; allowed here:" in text
    for key in ("bitwarden", "keyring", "keys", "path", "source", "ttl", "vault"):
        assert key in text.split("allowed here:")[1]


def test_source_settings_are_required_at_load(tmp_path: Path) -> None:
    """source: file without path (and vault without vault.path) fails when the manifest loads."""
    with pytest.raises(ManifestError, match="source: file needs path"):
        load(_manifest(tmp_path, "source: file\n"))
    with pytest.raises(ManifestError, match=r"source: vault needs vault\.path"):
        load(_manifest(tmp_path, "source: vault\nvault: {addr: http://127.0.0.1:8200}\n"))


def test_settings_are_kept_by_the_owning_backend(tmp_path: Path) -> None:
    """The file backend's top-level fields and the vault block end up validated, by scheme."""
    secrets = tmp_path / "s.yml"
    path = _manifest(
        tmp_path, f"source: file\npath: {secrets}\nvault: {{addr: http://127.0.0.1:8200}}\n"
    )
    settings = load(path).credentials.settings
    assert settings["file"] == FileSettings(path=secrets)
    assert isinstance(settings["vault"], VaultSpec)


def test_a_manifest_without_vault_imports_no_vault_code(tmp_path: Path) -> None:
    """Loading a manifest with file settings only imports neither the vault backend nor hvac."""
    path = _manifest(tmp_path, f"source: file\npath: {tmp_path / 's.yml'}\n")
    code = (
        "import sys; from scoped_mcp.manifest import load; load(sys.argv[1]); "
        "print(sorted(m for m in sys.modules if m == 'hvac' or m.endswith('backends.vault')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_third_party_backend_owns_its_block_through_the_entry_point(tmp_path: Path) -> None:
    """An installed backend validates credentials.acme, builds its default reference, and serves."""
    site = tmp_path / "site"
    info = site / "acme_backend-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-backend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[scoped_mcp.secret_backends]\nacme = acme_backend:AcmeBackend\n"
    )
    (site / "acme_backend.py").write_text(ACME)
    good = _manifest(tmp_path, "source: acme\nacme:\n  project: p-{agent_type}\n")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    done = _probe(good, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["p-{agent_type}", "acme:p-research#API_KEY", "acme-value"]
    (tmp_path / "m.yml").write_text("agent_type: research\ncredentials:\n  acme: {urll: x}\n")
    done = _probe(good, env)
    assert "credentials.acme.urll: unknown field; allowed here: project, url" in done.stderr
