"""Where an OAuth grant lives: a writable store named by a reference in ``oauth.store``.

``interface.py`` is the ``GrantStore`` base; ``file.py`` the ``file:`` store. A store reads,
writes and deletes one grant, and ``locked()`` serializes read-modify-write across processes,
so two servers of one agent type sharing a store never lose a rotated refresh token.
"""

from __future__ import annotations

from scoped_mcp.errors import ManifestError
from scoped_mcp.identity import AgentContext
from scoped_mcp.oauth.store.interface import GrantStore

SCHEMES = ("file",)


def open_store(reference: str, agent_ctx: AgentContext, *, where: str) -> GrantStore:
    """The store ``reference`` names, placeholders expanded; ManifestError naming the fix."""
    scheme, sep, rest = reference.partition(":")
    if not sep or not rest or scheme not in SCHEMES:
        raise ManifestError(
            f"{where}: {reference!r} is not a grant store",
            fix="write it as file:/path/to/grant.json (a file only you can read)",
        )
    from scoped_mcp.oauth.store.file import FileStore

    return FileStore.from_reference(agent_ctx.expand(rest), where=where)


__all__ = ["GrantStore", "open_store"]
