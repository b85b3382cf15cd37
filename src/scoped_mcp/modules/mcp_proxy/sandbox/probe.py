"""Whether bubblewrap can build a sandbox here: found, and able to unshare every namespace.

The answer is cached per binary for the life of the process (one ``bwrap ... true``, a few
milliseconds), so restarts after a rotation do not pay for it again.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from scoped_mcp.errors import ModuleLoadError

OPT_OUT = "or, accepting an unconfined upstream, set 'sandbox: off' on this module"


@functools.cache
def _probe(binary: str) -> str | None:
    """None when a sandbox works, else why not (no values, no foreign text beyond one line)."""
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argv of our own
            [binary, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
            capture_output=True,
            timeout=20,
            check=False,
            env={"PATH": "/usr/bin:/bin"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"running {binary} failed ({type(exc).__name__})"
    if done.returncode != 0:
        first = done.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        return f"{binary} cannot create namespaces ({first[0][:200] if first else 'no detail'})"
    return None


def require_bwrap(configured: str, *, label: str) -> str:
    """The bwrap binary's path; ``ModuleLoadError`` naming the fix when no sandbox can be built."""
    found = configured if "/" in configured else shutil.which(configured)
    if found is None or not os.access(found, os.X_OK):
        raise ModuleLoadError(
            f"{label}: the upstream is sandboxed by default but bubblewrap ({configured!r}) "
            "was not found",
            fix=f"install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap), {OPT_OUT}",
        )
    problem = _probe(found)
    if problem is not None:
        raise ModuleLoadError(
            f"{label}: the upstream is sandboxed by default but {problem}",
            fix="enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; "
            "on Ubuntu 24.04 also kernel.apparmor_restrict_unprivileged_userns=0, or an "
            f"AppArmor profile for bwrap), {OPT_OUT}",
        )
    return found
