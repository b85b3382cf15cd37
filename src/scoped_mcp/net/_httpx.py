"""httpx, or a ``ModuleLoadError`` naming the extra to install when it is missing.

Every file of this layer imports httpx through here, so whichever a module imports first, an
installation without the ``http`` extra gets the same explanation.
"""

from __future__ import annotations

from scoped_mcp.errors import ModuleLoadError

try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ModuleLoadError(
        "this module needs httpx, which is not installed",
        fix="pip install 'scoped-mcp[http]'",
    ) from exc

__all__ = ["httpx"]
