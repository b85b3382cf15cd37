"""Where an OAuth grant lives: a writable store named by a reference in ``oauth.store``.

``interface.py`` is the ``GrantStore`` base; ``file.py``, ``vault.py`` (KV v2, check-and-set)
and ``keyring.py`` the stores; ``lock.py`` the ``flock`` the file and keyring stores hold. A
store reads, writes and deletes one grant, and ``locked()`` serializes read-modify-write
across processes, so two servers of one agent type sharing a store never lose a rotated
refresh token.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from scoped_mcp.errors import ManifestError
from scoped_mcp.identity import AgentContext
from scoped_mcp.oauth.store.interface import GrantStore, StoreConflict

SCHEMES = ("file", "vault", "keyring")
FIX = (
    "write it as file:/path/to/grant.json (a file only you can read), vault:secret/path "
    "(KV v2) or keyring:service/username"
)


def open_store(
    reference: str,
    agent_ctx: AgentContext,
    *,
    where: str,
    vault: Any = None,
    keyring: Any = None,
    environ: Mapping[str, str] | None = None,
) -> GrantStore:
    """The store ``reference`` names, placeholders expanded; ManifestError naming the fix.

    ``vault`` is the manifest's validated ``credentials.vault`` (for ``vault:`` stores), and
    ``environ`` the environment its login reads (the server's: ``os.environ`` by default).
    """
    scheme, sep, rest = reference.partition(":")
    if not sep or not rest or scheme not in SCHEMES:
        raise ManifestError(f"{where}: {reference!r} is not a grant store", fix=FIX)
    rest = agent_ctx.expand(rest)
    if scheme == "file":
        from scoped_mcp.oauth.store.file import FileStore

        return FileStore.from_reference(rest, where=where)
    if scheme == "keyring":
        from scoped_mcp.credentials.backends.keyring import KeyringSpec
        from scoped_mcp.oauth.store.keyring import KeyringStore

        service, _, username = rest.rpartition("/")
        if not service or not username:
            raise ManifestError(f"{where}: {reference!r} needs service/username", fix=FIX)
        spec = keyring if isinstance(keyring, KeyringSpec) else KeyringSpec()
        return KeyringStore(spec, service, username, os.environ if environ is None else environ)
    mount, _, path = rest.strip("/").partition("/")
    path = path.removeprefix("data/")
    if not mount or not path:
        raise ManifestError(f"{where}: {reference!r} needs a mount and a path", fix=FIX)
    if vault is None:
        raise ManifestError(
            f"{where}: a vault: store needs credentials.vault (address and login)",
            fix="add credentials.vault (see docs/credentials.md)",
        )
    from scoped_mcp.credentials.backends.vault import VaultBackend
    from scoped_mcp.oauth.store.vault import VaultStore

    backend = VaultBackend(vault, os.environ if environ is None else environ)
    return VaultStore(backend, mount, path)


__all__ = ["GrantStore", "StoreConflict", "open_store"]
