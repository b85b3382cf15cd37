"""Installed plugins (entry points), read once per state of the import path.

Reading entry points parses every installed distribution's metadata: a few milliseconds, and
in a zygote's child about 1 MiB of private memory, each time. The answer can only change when a
distribution is added, removed or replaced, which changes the modification time of a directory
on ``sys.path`` (or ``sys.path`` itself), so it is kept until one of those changes. A zygote
reads them once before forking; its children then read none.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import EntryPoint, entry_points

_PathState = tuple[tuple[str, int], ...]
_read: dict[str, tuple[_PathState, tuple[EntryPoint, ...]]] = {}


def _path_state() -> _PathState:
    state = []
    for entry in sys.path:
        try:
            state.append((entry, os.stat(entry or os.curdir).st_mtime_ns))
        except OSError:
            state.append((entry, -1))
    return tuple(state)


def installed(group: str) -> tuple[EntryPoint, ...]:
    """The entry points of ``group`` in every installed distribution."""
    state = _path_state()
    known = _read.get(group)
    if known is None or known[0] != state:
        known = (state, tuple(entry_points(group=group)))
        _read[group] = known
    return known[1]
