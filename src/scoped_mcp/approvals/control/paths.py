"""Where the control sockets live: ``$XDG_RUNTIME_DIR/scoped-mcp/approvals/``, 0700 and ours.

The runtime directory is the zygote's (``zygote.runtime_dir``), checked the same way
(``zygote.check_private_dir``): not a link, ours, no access for group or others.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from scoped_mcp import zygote
from scoped_mcp.errors import ConfigError

SUBDIR = "approvals"
SUFFIX = ".sock"


def socket_dir(environ: Mapping[str, str], *, create: bool) -> Path:
    """The private directory of the control sockets; ``ConfigError`` if it is unusable."""
    try:
        base = Path(zygote.runtime_dir(environ))
    except zygote.ZygoteUnavailable as exc:
        raise ConfigError(
            f"approvals: the control socket needs a private runtime directory ({exc})",
            fix="set XDG_RUNTIME_DIR to a directory only this user can use (systemd sets "
            "/run/user/UID at login)",
        ) from None
    directory = base / SUBDIR
    if create:
        for path in (base, directory):
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=0o700)
    for path in (base, directory):
        try:
            zygote.check_private_dir(path)
        except zygote.ZygoteUnavailable as exc:
            raise ConfigError(
                f"approvals: refusing the control socket directory: {exc}",
                fix=f"remove {path} or make it yours with mode 0700",
            ) from None
    return directory


def socket_path(directory: Path, agent_id: str) -> Path:
    """This server's socket: one per process, named by agent and pid."""
    return directory / f"{agent_id}.{os.getpid()}{SUFFIX}"
