"""File backend: ``file:/path.yml#KEY`` reads a field of a YAML mapping in a private file.

The file must be a regular file owned by the user running scoped-mcp and readable by nobody else
(mode 0600 or 0400). ``credentials.unsafe_allow_insecure_file: true`` lifts that rule, and every
read then logs a warning.
"""

from __future__ import annotations

import logging
import os
import stat
from typing import ClassVar

import yaml
from pydantic import BaseModel, Field

from scoped_mcp.credentials.backends.interface import (
    BackendContext,
    Fetched,
    Finding,
    SecretBackend,
)
from scoped_mcp.credentials.lease import wipe
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import (
    AccessDenied,
    BackendMisconfigured,
    BackendUnavailable,
    CredentialError,
    InsecureSource,
    SecretNotFound,
)
from scoped_mcp.manifest import ManifestPath, StrictModel

_log = logging.getLogger(__name__)
MAX_SECRETS_FILE_BYTES = 1024 * 1024


def privacy_problems(info: os.stat_result, path: str) -> tuple[list[str], list[str]]:
    """What makes a secret-holding file unsafe (not ours, readable by others), and the fixes."""
    problems: list[str] = []
    fixes: list[str] = []
    if info.st_uid != os.geteuid():
        problems.append(f"owned by uid {info.st_uid}, not {os.geteuid()}")
        fixes.append(f"chown {os.geteuid()} {path}")
    if info.st_mode & 0o077:
        problems.append(f"mode {stat.S_IMODE(info.st_mode):04o} lets others read it")
        fixes.append(f"chmod 600 {path}")
    return problems, fixes


class FileSettings(StrictModel):
    """The file backend's settings, two fields directly under ``credentials:``."""

    path: ManifestPath | None = Field(
        default=None, description="The secrets file, for source: file."
    )
    unsafe_allow_insecure_file: bool = Field(
        default=False,
        description="Read secrets files that others can read or that we do not own (logged).",
    )


class FileBackend(SecretBackend):
    """Reads credentials from YAML files that only their owner can read."""

    schemes: ClassVar[tuple[str, ...]] = ("file",)
    config_model: ClassVar[type[BaseModel] | None] = FileSettings
    field_required: ClassVar[bool] = True
    source_field: ClassVar[str | None] = "path"
    source_needs: ClassVar[str] = "source: file needs path: /path/to/secrets.yml"

    @classmethod
    def from_manifest(cls, settings: BaseModel | None, context: BackendContext) -> FileBackend:
        """The backend with ``credentials.unsafe_allow_insecure_file`` as the manifest says."""
        spec = cls.settings_or_default(settings)
        assert isinstance(spec, FileSettings)
        return cls(unsafe_allow_insecure_file=spec.unsafe_allow_insecure_file)

    def __init__(self, *, unsafe_allow_insecure_file: bool = False) -> None:
        self._allow_insecure = unsafe_allow_insecure_file

    def __repr__(self) -> str:
        return f"FileBackend(unsafe_allow_insecure_file={self._allow_insecure})"

    def fetch(self, ref: SecretRef) -> Fetched:
        data = self._read(ref.path)
        if ref.field not in data:
            raise SecretNotFound(
                f"{ref.field} is not in {ref.path}",
                fix=f"add a line '{ref.field}: <value>' to {ref.path}",
            )
        return Fetched({k: v for k, v in data.items()})

    def check(self, ref: SecretRef) -> Finding:
        try:
            data = self._read(ref.path)
        except CredentialError as exc:
            return Finding.failed(exc)
        if ref.field not in data:
            return Finding(
                "missing", f"{ref.field} is not in {ref.path}", f"add '{ref.field}: ...'"
            )
        return Finding("ok", f"{ref.path} is private to its owner")

    def _read(self, path: str) -> dict[str | None, str]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise SecretNotFound(
                f"secrets file {path} does not exist",
                fix=f"create it: install -m 600 /dev/null {path}, then add 'KEY: value' lines",
            ) from None
        except PermissionError:
            raise AccessDenied(f"secrets file {path} is not readable by this user") from None
        except OSError as exc:
            raise BackendMisconfigured(
                f"secrets file {path} cannot be opened ({os.strerror(exc.errno or 0)}); "
                "symbolic links are not followed"
            ) from None
        # Read into a buffer that is wiped once parsed: os.read() would leave unwipeable bytes.
        raw = bytearray()
        try:
            size_hint = self._check_private(fd, path)
            raw = bytearray(min(size_hint, MAX_SECRETS_FILE_BYTES) + 1)
            size = os.readv(fd, [raw])
            if size > MAX_SECRETS_FILE_BYTES:
                raise BackendMisconfigured(f"secrets file {path} is larger than 1 MiB")
            if size == len(raw):
                raise BackendUnavailable(f"secrets file {path} changed while it was read")
            with memoryview(raw) as view:
                return self._parse(view[:size], path)
        finally:
            os.close(fd)
            wipe(raw)

    def _check_private(self, fd: int, path: str) -> int:
        """Refuse a file others can read or we do not own; return its size."""
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BackendMisconfigured(f"secrets file {path} is not a regular file")
        problems, fixes = privacy_problems(info, path)
        if not problems:
            return info.st_size
        if self._allow_insecure:
            _log.warning(
                "reading an insecure secrets file (unsafe_allow_insecure_file is set)",
                extra={"path": path, "problems": problems},
            )
            return info.st_size
        raise InsecureSource(f"secrets file {path}: {'; '.join(problems)}", fix="; ".join(fixes))

    @staticmethod
    def _parse(raw: memoryview, path: str) -> dict[str | None, str]:
        try:
            data = yaml.safe_load(str(raw, "utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            # The parser's message can quote the offending line, which may hold a secret.
            raise BackendMisconfigured(
                f"secrets file {path} is not valid YAML", fix="write one 'KEY: value' per line"
            ) from None
        if not isinstance(data, dict):
            raise BackendMisconfigured(f"secrets file {path} must be a mapping of KEY: value")
        out: dict[str | None, str] = {}
        for key, value in data.items():
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                out[str(key)] = str(value)
        return out
