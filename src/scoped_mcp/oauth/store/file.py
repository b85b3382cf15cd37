"""``file:/path/grant.json``: the grant as JSON in a file only we can read.

The file is created 0600 in a directory made 0700 if missing, replaced atomically (a temporary
file in the same directory, fsync, ``rename``), and never followed through a symbolic link. A
file another user owns or others can read is refused with the fix, as a secrets file is.
Read-modify-write holds ``flock`` on ``<path>.lock``, so two processes never both rotate.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path

from scoped_mcp.credentials.backends.file import privacy_problems
from scoped_mcp.errors import (
    BackendMisconfigured,
    BackendUnavailable,
    InsecureSource,
    ManifestError,
)
from scoped_mcp.oauth.grant import Grant
from scoped_mcp.oauth.store.interface import GrantStore
from scoped_mcp.oauth.store.lock import held

MAX_GRANT_BYTES = 256 * 1024


class FileStore(GrantStore):
    """One grant in one private JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    @classmethod
    def from_reference(cls, text: str, *, where: str) -> FileStore:
        path = Path(text).expanduser()
        if not path.is_absolute() or path.name in ("", ".", ".."):
            raise ManifestError(
                f"{where}: file:{text} must be an absolute path to a file",
                fix="e.g. file:~/.local/state/scoped-mcp/oauth/{agent_type}-github.json",
            )
        return cls(path)

    def __repr__(self) -> str:
        return f"FileStore({str(self.path)!r})"

    def describe(self) -> str:
        return f"file:{self.path}"

    def locked(self) -> AbstractContextManager[None]:
        return held(self._lock_path, what=f"the OAuth grant store {self.path}")

    def read(self) -> Grant | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise BackendMisconfigured(
                    f"the OAuth grant store {self.path} is a symbolic link",
                    fix=f"remove it and log in again: rm {self.path}",
                ) from None
            raise BackendUnavailable(
                f"the OAuth grant store {self.path} cannot be read ({os.strerror(exc.errno or 0)})"
            ) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise BackendMisconfigured(f"the OAuth grant store {self.path} is not a file")
            problems, fixes = privacy_problems(info, str(self.path))
            if problems:
                raise InsecureSource(
                    f"the OAuth grant store {self.path}: {'; '.join(problems)}",
                    fix="; ".join(fixes),
                )
            data = os.read(fd, MAX_GRANT_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_GRANT_BYTES:
            raise BackendMisconfigured(f"the OAuth grant store {self.path} is too large")
        return Grant.from_json(data, where=str(self.path))

    def write(self, grant: Grant) -> None:
        self._ensure_dir()
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(grant.to_json())
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def delete(self) -> bool:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return False
        return True

    def _ensure_dir(self) -> None:
        parent = self.path.parent
        if not parent.exists():
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
