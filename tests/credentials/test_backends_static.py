"""The env, file and keyring backends pass the backend contract and refuse unsafe sources."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from scoped_mcp.credentials.backends.env import EnvBackend
from scoped_mcp.credentials.backends.file import FileBackend
from scoped_mcp.credentials.backends.interface import SecretBackend
from scoped_mcp.credentials.backends.keyring import KeyringBackend, KeyringSpec
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import BackendMisconfigured, InsecureSource
from scoped_mcp.testing.secret_backend import SecretBackendContract


class TestEnvBackend(SecretBackendContract):
    def make_backend(self) -> SecretBackend:
        self.environ: dict[str, str] = {}
        return EnvBackend(self.environ)

    def provision(self, backend: SecretBackend, name: str, value: str) -> SecretRef:
        self.environ[name] = value
        return SecretRef("env", name, None)

    def missing_ref(self, backend: SecretBackend) -> SecretRef:
        return SecretRef("env", "NOT_SET_ANYWHERE", None)


class TestFileBackend(SecretBackendContract):
    @pytest.fixture(autouse=True)
    def _dir(self, tmp_path: Path) -> None:
        self.path = tmp_path / "secrets.yml"

    def make_backend(self) -> SecretBackend:
        return FileBackend()

    def provision(self, backend: SecretBackend, name: str, value: str) -> SecretRef:
        self.path.write_text(yaml.safe_dump({name: value}))
        self.path.chmod(0o600)
        return SecretRef("file", str(self.path), name)

    def missing_ref(self, backend: SecretBackend) -> SecretRef:
        return SecretRef("file", str(self.path.with_name("absent.yml")), "KEY")


class TestKeyringBackend(SecretBackendContract):
    @pytest.fixture(autouse=True)
    def _data_home(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))

    def make_backend(self) -> SecretBackend:
        spec = KeyringSpec(backend="keyrings.alt.file.PlaintextKeyring")
        return KeyringBackend(spec)

    def provision(self, backend: SecretBackend, name: str, value: str) -> SecretRef:
        from keyrings.alt.file import PlaintextKeyring

        PlaintextKeyring().set_password("scoped-mcp/research", name, value)
        return SecretRef("keyring", "scoped-mcp/research", name)

    def missing_ref(self, backend: SecretBackend) -> SecretRef:
        return SecretRef("keyring", "scoped-mcp/research", "NO_SUCH_ENTRY")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_file_readable_by_others_is_refused_with_the_chmod(tmp_path: Path, mode: int) -> None:
    """A secrets file readable by group or others is refused, and the error gives the chmod."""
    path = tmp_path / "s.yml"
    path.write_text("KEY: value-not-shown\n")
    path.chmod(mode)
    with pytest.raises(InsecureSource) as info:
        FileBackend().fetch(SecretRef("file", str(path), "KEY"))
    assert f"chmod 600 {path}" in info.value.diagnostics()
    assert "value-not-shown" not in info.value.diagnostics()


def test_insecure_file_opt_out_reads_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """unsafe_allow_insecure_file reads a group-readable file and logs a warning every time."""
    path = tmp_path / "s.yml"
    path.write_text("KEY: v4lue\n")
    path.chmod(0o644)
    backend = FileBackend(unsafe_allow_insecure_file=True)
    assert backend.fetch(SecretRef("file", str(path), "KEY")).values["KEY"] == "v4lue"
    assert "insecure secrets file" in caplog.text


def test_symlinked_secrets_file_is_not_followed(tmp_path: Path) -> None:
    """A secrets file path that is a symbolic link is refused rather than followed."""
    real = tmp_path / "real.yml"
    real.write_text("KEY: v\n")
    real.chmod(0o600)
    link = tmp_path / "link.yml"
    link.symlink_to(real)
    with pytest.raises(BackendMisconfigured):
        FileBackend().fetch(SecretRef("file", str(link), "KEY"))


def test_invalid_yaml_error_does_not_quote_the_file(tmp_path: Path) -> None:
    """A broken secrets file is reported without quoting its content."""
    path = tmp_path / "s.yml"
    path.write_text("KEY: [unclosed-s3cret\n")
    path.chmod(0o600)
    with pytest.raises(BackendMisconfigured) as info:
        FileBackend().fetch(SecretRef("file", str(path), "KEY"))
    assert "unclosed-s3cret" not in info.value.diagnostics()


def test_file_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    """A secrets file not owned by the running user is refused with the chown to fix it."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root to chown a file to another user; CI runs as root")
    path = tmp_path / "s.yml"
    path.write_text("KEY: v\n")
    path.chmod(0o600)
    os.chown(path, 65534, 65534)
    with pytest.raises(InsecureSource) as info:
        FileBackend().fetch(SecretRef("file", str(path), "KEY"))
    assert f"chown {os.geteuid()} {path}" in info.value.diagnostics()


@pytest.mark.parametrize(
    "backend_name",
    ["keyrings.alt.file.EncryptedKeyring", "keyring.backends.fail.Keyring"],
)
def test_prompting_or_failing_keyrings_are_refused(backend_name: str) -> None:
    """A keyring backend that would prompt on a terminal, or never answers, is refused by name."""
    spec = KeyringSpec(backend=backend_name)
    backend = KeyringBackend(spec)
    with pytest.raises(BackendMisconfigured) as info:
        backend.fetch(SecretRef("keyring", "svc", "KEY"))
    assert backend_name in str(info.value)
