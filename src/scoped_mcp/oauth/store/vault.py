"""``vault:mount/path``: the grant as one KV v2 secret, replaced with check-and-set.

Vault has no lock to hold across a refresh, so the store is optimistic: ``read`` remembers the
version it saw and ``write`` sends it as ``cas``. A write that lost the race (another process
stored a rotation first) raises ``StoreConflict``; the token source then takes the other
process's grant instead of overwriting it. The secret's one field ``grant`` holds the JSON.
Uses the manifest's ``credentials.vault`` (address, login) through a Vault backend of its own;
the policy must allow create, read and update on ``<mount>/data/<path>`` and delete on
``<mount>/metadata/<path>`` (``auth logout``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from scoped_mcp.errors import SecretNotFound
from scoped_mcp.oauth.grant import Grant
from scoped_mcp.oauth.store.interface import GrantStore, StoreConflict

if TYPE_CHECKING:
    from scoped_mcp.credentials.backends.vault import VaultBackend

FIELD = "grant"


class VaultStore(GrantStore):
    """One grant in one KV v2 secret."""

    def __init__(self, vault: VaultBackend, mount: str, path: str) -> None:
        self._vault = vault
        self._mount = mount
        self._path = path
        self._version = 0  # the version the last read saw (0: none)

    def __repr__(self) -> str:
        return f"VaultStore({self.describe()!r})"

    def describe(self) -> str:
        return f"vault:{self._mount}/{self._path}"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        yield  # check-and-set in ``write`` stands in for a lock

    def read(self) -> Grant | None:
        try:
            answer = self._vault.request("GET", f"{self._mount}/data/{self._path}")
        except SecretNotFound:
            self._version = 0
            return None
        data: Any = (answer or {}).get("data") or {}
        self._version = int((data.get("metadata") or {}).get("version") or 0)
        text = (data.get("data") or {}).get(FIELD)
        if not isinstance(text, str):
            return None
        return Grant.from_json(text.encode(), where=self.describe())

    def write(self, grant: Grant) -> None:
        body = {"options": {"cas": self._version}, "data": {FIELD: grant.to_json().decode()}}
        try:
            answer = self._vault.request(
                "POST", f"{self._mount}/data/{self._path}", capability="update", json=body
            )
        except Exception:
            seen = self._version
            self.read()
            if self._version != seen:
                raise StoreConflict(f"{self.describe()} changed since it was read") from None
            raise
        self._version = int(((answer or {}).get("data") or {}).get("version") or 0)

    def close(self) -> None:
        self._vault.close()

    def delete(self) -> bool:
        existed = self.read() is not None
        self._vault.request("DELETE", f"{self._mount}/metadata/{self._path}", capability="delete")
        self._version = 0
        return existed
