"""Paths a sandbox must never expose by accident: scoped-mcp's own state and the operator's home.

The sandbox shows only what is listed, so this guard is about listing too much: a path that is,
or contains, scoped-mcp's state directory (default audit logs), that contains the manifest's
directory, or that is the home directory or ``/`` is refused at manifest load, naming the field
and what to list instead.
"""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """``$XDG_STATE_HOME/scoped-mcp`` (``~/.local/state/scoped-mcp``): default audit logs."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(os.path.realpath(base)) / "scoped-mcp"


def _contains(outer: Path, inner: Path) -> bool:
    return outer == inner or outer in inner.parents


def refuse_protected(path: Path, *, what: str, manifest_dir: object) -> None:
    """Raise ``ValueError`` if ``path`` (resolved) would expose protected files."""
    home = Path(os.path.realpath(os.path.expanduser("~")))
    state = state_dir()
    if path == Path("/"):
        raise ValueError(f"{what} is the whole filesystem; list the directories the upstream needs")
    if path == home:
        raise ValueError(f"{what} is the home directory; list the subdirectories it needs")
    if _contains(path, state) or _contains(state, path):
        raise ValueError(
            f"{what} overlaps scoped-mcp's state directory {state} (audit logs); "
            "list a directory outside it"
        )
    if manifest_dir is not None:
        manifests = Path(os.path.realpath(str(manifest_dir)))
        if _contains(path, manifests):
            raise ValueError(
                f"{what} contains the manifest's directory {manifests}; "
                "list a subdirectory that holds neither the manifest nor its secrets"
            )
