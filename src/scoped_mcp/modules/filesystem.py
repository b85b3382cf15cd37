"""Filesystem module: files under ``{base_path}/agents/{agent_id}/`` and nowhere else.

Every path argument is scoped lexically by ``PrefixScope`` (the call pipeline does it), then opened
one component at a time relative to a directory descriptor with ``O_NOFOLLOW``, so a symlink at any
depth is refused and there is no window between a check and the open. Only ``base_path`` itself,
which the operator chose, may be reached through a symlink. Files are opened ``O_NONBLOCK`` and
checked with ``fstat``, so a FIFO or device is refused instead of blocking or being read. Writes go
to a temporary file in the same directory and are renamed into place, so a failed write leaves the
old file whole and never writes through a hard link or symlink.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import (
    BackendError,
    ConfigError,
    InvalidArgument,
    ScopeViolation,
    ToolCallError,
)
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import ManifestPath
from scoped_mcp.modules._base import ToolModule, tool
from scoped_mcp.scoping import PrefixScope, ScopedStr

Encoding = Literal["utf-8", "base64"]
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_BASE_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_TEMP_STEM_BYTES = 200
MAX_LIST_ENTRIES = 1000


class FilesystemConfig(BaseModel):
    """``modules.filesystem.config``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_path: ManifestPath = Field(description="Directory holding agents/{agent_id}/.")
    max_file_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, le=1024**3, description="Largest file read or written."
    )


_ERRNO_MESSAGES = {
    errno.ELOOP: "refused: the path goes through a symbolic link",
    errno.ENOTDIR: "a component of the path is not a directory",
    errno.ENOENT: "no such file or directory",
    errno.EISDIR: "the path is a directory",
    errno.ENOTEMPTY: "the directory is not empty",
    errno.EACCES: "permission denied",
}


def _errno_message(exc: OSError) -> str:
    if exc.errno in _ERRNO_MESSAGES:
        return _ERRNO_MESSAGES[exc.errno]
    return os.strerror(exc.errno) if exc.errno else "filesystem error"


def _fail(exc: OSError) -> Exception:
    message = _errno_message(exc)
    if exc.errno == errno.ELOOP:
        return ScopeViolation(message)
    return BackendError(message)


class FilesystemModule(ToolModule):
    """Read and write files in the agent's own directory."""

    name = "filesystem"
    scoping = PrefixScope("agents/{agent_id}/")
    config_model = FilesystemConfig
    config: FilesystemConfig

    def __init__(
        self, agent_ctx: AgentContext, credentials: CredentialView, config: FilesystemConfig
    ) -> None:
        super().__init__(agent_ctx, credentials, config)
        self._base = Path(config.base_path)
        self._root = self.scoping.root_parts(agent_ctx)

    async def startup(self) -> None:
        """Create the agent's directory (0700) if it does not exist yet, never through a symlink."""
        self._base.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            with self._open_dir((), create=True):
                pass
        except ToolCallError as exc:
            raise ConfigError(
                f"filesystem: the agent directory under base_path is unusable: {exc.message}",
                fix="make base_path/agents/{agent_id} a real directory, not a symbolic link",
            ) from None

    # -- descriptor-relative path handling -------------------------------------------------

    def _split(self, scoped: str) -> tuple[str, ...]:
        parts = tuple(scoped.split("/"))
        if parts[: len(self._root)] != self._root:
            raise ScopeViolation("path is outside your directory")
        return parts[len(self._root) :]

    @contextlib.contextmanager
    def _open_dir(self, parts: tuple[str, ...], *, create: bool = False) -> Iterator[int]:
        """A descriptor for the directory at ``parts`` below the agent root, never via a link."""
        try:
            fd = os.open(self._base, _BASE_FLAGS)
        except OSError as exc:
            raise BackendError("the agent's base directory is unavailable") from exc
        try:
            for part in self._root + parts:
                next_fd = self._open_child_dir(part, fd, create=create)
                os.close(fd)
                fd = next_fd
            yield fd
        except OSError as exc:
            raise _fail(exc) from None
        finally:
            os.close(fd)

    @staticmethod
    def _open_child_dir(part: str, fd: int, *, create: bool) -> int:
        """Open directory ``part`` below ``fd`` without following a link; ELOOP if it is one."""
        try:
            try:
                return os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
                return os.open(part, _DIR_FLAGS, dir_fd=fd)
        except NotADirectoryError:
            # O_DIRECTORY|O_NOFOLLOW reports a symlink as ENOTDIR; tell the two apart for the audit.
            info = os.stat(part, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                raise OSError(errno.ELOOP, "symbolic link") from None
            raise

    def _target(self, path: str) -> tuple[tuple[str, ...], str]:
        parts = self._split(path)
        if not parts:
            raise InvalidArgument("path names your directory itself; give a file name")
        return parts[:-1], parts[-1]

    # -- tools -----------------------------------------------------------------------------

    @tool(mode="read")
    async def read_file(
        self,
        path: Annotated[
            ScopedStr,
            Field(
                description='File to read, relative to your directory and "/"-separated, e.g. '
                '"notes/today.md". Absolute paths, ".." out of your directory and symbolic '
                "links are refused; at most max_file_bytes (10 MiB unless the operator set "
                "another)."
            ),
        ],
        encoding: Annotated[
            Encoding,
            Field(
                description='"utf-8" returns the text; "base64" returns the bytes base64-encoded '
                "(for binary files)."
            ),
        ] = "utf-8",
    ) -> str:
        """Read a file from your directory.

        Text files are returned as UTF-8; use encoding="base64" for binary files.
        """
        parent, name = self._target(path)
        limit = self.config.max_file_bytes
        with self._open_dir(parent) as dir_fd:
            fd = self._open_regular(name, dir_fd)
            try:
                if os.fstat(fd).st_size > limit:
                    raise InvalidArgument(f"file is larger than the {limit}-byte limit")
                data = os.read(fd, limit + 1)
                while len(data) <= limit and (chunk := os.read(fd, limit + 1 - len(data))):
                    data += chunk
            finally:
                os.close(fd)
        if len(data) > limit:
            raise InvalidArgument(f"file is larger than the {limit}-byte limit")
        if encoding == "base64":
            return base64.b64encode(data).decode("ascii")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(
                'file is not valid UTF-8 text; read it with encoding="base64"'
            ) from None

    @staticmethod
    def _open_regular(name: str, dir_fd: int) -> int:
        """Open a regular file for reading; links and special files are refused, never opened.

        The stat before the open keeps devices from being opened at all (opening one can have side
        effects); O_NOFOLLOW|O_NONBLOCK plus the fstat after it cover a swap in between, so a FIFO
        put there in the meantime cannot block the call.
        """
        try:
            mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                raise ScopeViolation("refused: the path is a symbolic link")
            if not stat.S_ISREG(mode):
                raise InvalidArgument("not a regular file")
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            raise _fail(exc) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InvalidArgument("not a regular file")
        return fd

    @tool(mode="read")
    async def list_dir(
        self,
        path: Annotated[
            ScopedStr,
            Field(
                description='Directory to list, relative to your directory, e.g. "notes"; "" '
                f"(the default) lists the top. At most {MAX_LIST_ENTRIES} entries are returned."
            ),
        ] = "",
    ) -> dict[str, Any]:
        """List a directory in your directory ("" for the top).

        Symbolic links are shown, not followed.
        """
        parts = self._split(path)
        entries: list[dict[str, Any]] = []
        truncated = False
        with self._open_dir(parts) as dir_fd, os.scandir(dir_fd) as listing:
            for entry in listing:
                if len(entries) >= MAX_LIST_ENTRIES:
                    truncated = True
                    break
                info = entry.stat(follow_symlinks=False)
                kind = (
                    "symlink"
                    if stat.S_ISLNK(info.st_mode)
                    else "dir"
                    if stat.S_ISDIR(info.st_mode)
                    else "file"
                    if stat.S_ISREG(info.st_mode)
                    else "other"
                )
                item: dict[str, Any] = {"name": entry.name, "type": kind}
                if kind == "file":
                    item["size"] = info.st_size
                entries.append(item)
        entries.sort(key=lambda item: item["name"])
        return {"path": "/".join(parts), "entries": entries, "truncated": truncated}

    @tool(mode="write")
    async def write_file(
        self,
        path: Annotated[
            ScopedStr,
            Field(
                description="File to create or replace, relative to your directory, e.g. "
                '"reports/2024-05.md"; missing parent directories are created.'
            ),
        ],
        content: Annotated[
            str,
            Field(
                description="The whole new content: text, or base64 when encoding is "
                '"base64". At most max_file_bytes once decoded (10 MiB unless the operator set '
                "another)."
            ),
        ],
        encoding: Annotated[
            Encoding,
            Field(
                description='"utf-8" writes content as text; "base64" decodes content and '
                "writes the bytes."
            ),
        ] = "utf-8",
    ) -> dict[str, Any]:
        """Create or replace a file in your directory; parent directories are created.

        Use encoding="base64" to write binary content. The replace is atomic.
        """
        limit = self.config.max_file_bytes
        if len(content) > (limit * 4 // 3 + 4 if encoding == "base64" else limit):
            raise InvalidArgument(f"content is larger than the {limit}-byte limit")
        if encoding == "base64":
            try:
                data = base64.b64decode(content, validate=True)
            except ValueError:
                raise InvalidArgument("content is not valid base64") from None
        else:
            try:
                data = content.encode("utf-8", errors="strict")
            except UnicodeEncodeError:
                raise InvalidArgument("content is not valid UTF-8 text (lone surrogate)") from None
        if len(data) > limit:
            raise InvalidArgument(f"content is larger than the {limit}-byte limit")
        parent, name = self._target(path)
        with self._open_dir(parent, create=True) as dir_fd:
            self._refuse_non_regular(name, dir_fd)
            stem = name.encode("utf-8")[:_TEMP_STEM_BYTES].decode("utf-8", errors="ignore")
            temp = f".{stem}.{secrets.token_hex(6)}.tmp"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(temp, flags, 0o600, dir_fd=dir_fd)
            except OSError as exc:
                raise _fail(exc) from None
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
                os.close(fd)
                fd = -1
                os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError as exc:
                if fd >= 0:
                    os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=dir_fd)
                raise _fail(exc) from None
        return {"path": "/".join((*parent, name)), "bytes": len(data)}

    @staticmethod
    def _refuse_non_regular(name: str, dir_fd: int) -> None:
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(info.st_mode):
            raise ScopeViolation("refused: the path is a symbolic link")
        if not stat.S_ISREG(info.st_mode):
            raise InvalidArgument("the path exists and is not a regular file")

    @tool(mode="write")
    async def delete_file(
        self,
        path: Annotated[
            ScopedStr,
            Field(
                description='File to delete, relative to your directory, e.g. "tmp/draft.txt". '
                "Directories are not deleted."
            ),
        ],
    ) -> dict[str, Any]:
        """Delete a file in your directory. Directories are not deleted."""
        parent, name = self._target(path)
        with self._open_dir(parent) as dir_fd:
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    raise InvalidArgument("the path is a directory; only files are deleted")
                os.unlink(name, dir_fd=dir_fd)
            except OSError as exc:
                raise _fail(exc) from None
        return {"path": "/".join((*parent, name)), "deleted": True}
