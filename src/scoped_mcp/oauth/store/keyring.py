"""``keyring:service/username``: the grant as one OS keyring entry, rewritten under a lock.

The keyring backend is chosen as for keyring references (``credentials.keyring.backend``, and
the same refusal of prompting or always-failing backends). A keyring has no compare-and-set, so
read-modify-write holds ``flock`` on a lock file named after the entry under
``$XDG_STATE_HOME/scoped-mcp/oauth-locks/`` (processes of one user on one machine: the keyring's
own reach).
"""

from __future__ import annotations

import hashlib
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from scoped_mcp.credentials.backends.keyring import KeyringBackend, KeyringSpec
from scoped_mcp.errors import BackendUnavailable
from scoped_mcp.oauth.grant import Grant
from scoped_mcp.oauth.store.interface import GrantStore
from scoped_mcp.oauth.store.lock import held


class KeyringStore(GrantStore):
    """One grant in one keyring entry."""

    def __init__(
        self, spec: KeyringSpec, service: str, username: str, environ: dict[str, str] | Any
    ) -> None:
        self._backend = KeyringBackend(spec)
        self._service = service
        self._username = username
        state = environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
        name = hashlib.sha256(f"{service}/{username}".encode()).hexdigest()[:24]
        self._lock = Path(state) / "scoped-mcp" / "oauth-locks" / f"{name}.lock"

    def __repr__(self) -> str:
        return f"KeyringStore({self.describe()!r})"

    def describe(self) -> str:
        return f"keyring:{self._service}/{self._username}"

    def locked(self) -> AbstractContextManager[None]:
        return held(self._lock, what=f"the OAuth grant store {self.describe()}")

    def _keyring(self) -> Any:
        return self._backend._backend()

    def _call(self, action: str, *args: str) -> Any:
        try:
            return getattr(self._keyring(), action)(self._service, self._username, *args)
        except Exception as exc:  # noqa: BLE001 - keyring backends raise anything
            if action == "delete_password" and "PasswordDelete" in type(exc).__name__:
                return False
            raise BackendUnavailable(
                f"keyring failed on {self.describe()} ({type(exc).__name__})"
            ) from None

    def read(self) -> Grant | None:
        text = self._call("get_password")
        if text is None:
            return None
        return Grant.from_json(str(text).encode(), where=self.describe())

    def write(self, grant: Grant) -> None:
        self._call("set_password", grant.to_json().decode())

    def delete(self) -> bool:
        if self.read() is None:
            return False
        return self._call("delete_password") is not False
