"""A module's view of the broker: only the keys it declared, never shown in a repr.

Built-in modules use the call-scoped form, which keeps plaintext in a wiped buffer for the length
of one block::

    async with self.credentials.use("NTFY_TOKEN") as token:
        headers = {"Authorization": f"Bearer {token.text()}"}

Modules written against the original API may read ``self.credentials["KEY"]``, which returns a
``str`` (fetched just in time; it cannot be wiped).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from scoped_mcp.errors import CredentialError

if TYPE_CHECKING:
    from scoped_mcp.credentials.broker import CredentialBroker
    from scoped_mcp.credentials.lease import Plaintext


class CredentialView(Protocol):
    """What a module holds as ``self.credentials``: its own declared keys, nothing else.

    ``use`` is the call-scoped form built-ins use; ``has`` says whether an optional key has a
    value without revealing it; ``[key]`` is the seed API's plain ``str`` read.
    """

    def use(self, key: str) -> AbstractAsyncContextManager[Plaintext]:
        """Decrypt ``key`` for the duration of an ``async with`` block."""
        ...

    async def has(self, key: str) -> bool:
        """Whether ``key`` has a value now (fetching it if needed); never reveals it."""
        ...

    def __getitem__(self, key: str) -> str:
        """The value as a ``str`` (fetched just in time; it cannot be wiped)."""
        ...

    def protect(self, value: str) -> None:
        """Have the redactor scrub ``value``, a secret the module obtained itself."""
        ...

    def record(self, action: str, **fields: Any) -> None:
        """Write a credential audit event about such a secret (names only, never a value)."""
        ...

    def __contains__(self, key: object) -> bool:
        """Whether the module declared ``key``; fetches nothing."""
        ...


class ModuleCredentials(Mapping[str, str]):
    """Read-only access to one module's declared credentials."""

    def __init__(self, broker: CredentialBroker, module: str, optional: frozenset[str]) -> None:
        self._broker = broker
        self._module = module
        self._optional = optional

    def __repr__(self) -> str:
        return f"ModuleCredentials({self._module!r}, keys={self._broker.keys_of(self._module)})"

    def use(self, key: str) -> AbstractAsyncContextManager[Plaintext]:
        """Decrypt ``key`` for the duration of the block (fetching it first if needed)."""
        return self._broker.open(self._module, key)

    async def has(self, key: str) -> bool:
        """Whether an optional key has a value, without revealing it."""
        try:
            await self._broker.ensure(self._module, key)
        except CredentialError:
            if key in self._optional:
                return False
            raise
        return True

    def __getitem__(self, key: str) -> str:
        try:
            with self._broker.open(self._module, key) as plain:
                return plain.text()
        except CredentialError:
            if key in self._optional and key in self._broker.keys_of(self._module):
                raise KeyError(key) from None
            raise

    def protect(self, value: str) -> None:
        """Have the redactor scrub ``value`` (an OAuth token this module's upstream minted)."""
        self._broker.protect(value)

    def record(self, action: str, **fields: Any) -> None:
        """A credential audit event for this module (an OAuth refresh): names, never values."""
        self._broker.record(action, module=self._module, **fields)

    def __contains__(self, key: object) -> bool:
        """Whether the module declared ``key``; fetches nothing."""
        return key in self._broker.keys_of(self._module)

    def __iter__(self) -> Iterator[str]:
        return iter(self._broker.keys_of(self._module))

    def __len__(self) -> int:
        return len(self._broker.keys_of(self._module))
