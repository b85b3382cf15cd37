"""The baseline of the benchmark: a bare FastMCP server with one tool, ``filesystem_read_file``.

It does the same file I/O as the filesystem module's ``read_file`` body (the same system calls:
open the base directory, walk ``agents/{agent_id}/...`` one component at a time with ``O_NOFOLLOW``
relative to a directory descriptor, ``lstat``, ``openat``, ``fstat``, bounded ``read``, UTF-8
decode; see ``read_below``), and FastMCP is configured as scoped-mcp
configures it: the ``FASTMCP_*`` environment comes from the parent (``bench/run.py`` passes the same
``cli._FASTMCP_ENV`` to both servers), error details are masked, the banner is off, logging is off.

What it leaves out is exactly what the benchmark measures: manifest loading and validation, module
lookup, hardening, the ops log, the call pipeline (scope check, redaction, audit record, argument
digest) and the audit middleware. It imports nothing from scoped_mcp, so its start-up is FastMCP's.

Usage: ``python bench/bare_server.py BASE_DIR`` with ``AGENT_ID`` set.
"""

from __future__ import annotations

import base64
import os
import stat
import sys
from functools import partial
from typing import Literal

import anyio
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError

_BASE_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_DIR_FLAGS = _BASE_FLAGS | os.O_NOFOLLOW
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
MAX_FILE_BYTES = 10 * 1024 * 1024


def read_below(base: str, parts: list[str], limit: int = MAX_FILE_BYTES) -> bytes:
    """Read ``base/parts...`` without following a link at any depth; at most ``limit`` bytes.

    The same system calls as the filesystem module's read: open the base, ``openat`` each
    directory with ``O_NOFOLLOW``, ``lstat`` the name (so a device is never opened), ``openat``
    it non-blocking, ``fstat`` it (type, then size), read.
    """
    fd = os.open(base, _BASE_FLAGS)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        if not stat.S_ISREG(os.stat(parts[-1], dir_fd=fd, follow_symlinks=False).st_mode):
            raise ToolError("not a regular file")
        file_fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        if not stat.S_ISREG(os.fstat(file_fd).st_mode) or os.fstat(file_fd).st_size > limit:
            raise ToolError("not a regular file, or too large")
        data = os.read(file_fd, limit + 1)
        while len(data) <= limit and (chunk := os.read(file_fd, limit + 1 - len(data))):
            data += chunk
    finally:
        os.close(file_fd)
    return data


def build(base: str, agent_id: str) -> FastMCP:
    """The bare server: one tool with the same name, parameters and return type as ours."""
    root = ["agents", agent_id]
    mcp = FastMCP(name="bare", mask_error_details=True, on_duplicate="error")

    @mcp.tool(name="filesystem_read_file")
    async def read_file(path: str, encoding: Literal["utf-8", "base64"] = "utf-8") -> str:
        """Read a file from your directory."""
        try:
            data = read_below(base, root + [p for p in path.split("/") if p])
        except OSError:
            raise ToolError("cannot read the file") from None
        if encoding == "base64":
            return base64.b64encode(data).decode("ascii")
        return data.decode("utf-8")

    return mcp


def main() -> None:
    mcp = build(sys.argv[1], os.environ["AGENT_ID"])
    anyio.run(partial(mcp.run_stdio_async, show_banner=False))


if __name__ == "__main__":
    main()
