"""The grant-store interface: one grant, read and replaced atomically under a lock."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager

from scoped_mcp.errors import BackendUnavailable
from scoped_mcp.oauth.grant import Grant


class StoreConflict(BackendUnavailable):
    """Another process replaced the grant between this one's read and write."""


class GrantStore(ABC):
    """Keeps one OAuth grant. Synchronous: callers run it off the event loop."""

    @abstractmethod
    def describe(self) -> str:
        """Where the grant lives, for messages (never a value)."""

    @abstractmethod
    def locked(self) -> AbstractContextManager[None]:
        """Hold the store's lock for a read-modify-write (across processes)."""

    @abstractmethod
    def read(self) -> Grant | None:
        """The stored grant, or None when there is none."""

    @abstractmethod
    def write(self, grant: Grant) -> None:
        """Replace the stored grant atomically: a reader sees the old one or the new one."""

    @abstractmethod
    def delete(self) -> bool:
        """Remove the grant; whether there was one."""

    def close(self) -> None:
        """Release what the store holds (Vault: revoke its login token)."""
        return None
