"""Sealed secrets and leases.

A ``Sealer`` holds one random AES-256-GCM key for the life of the process. Every cached credential
is a ``SealedSecret``: nonce and ciphertext only. ``Sealer.open`` decrypts into a ``bytearray`` that
is zeroed when the ``Plaintext`` context ends. What Python cannot promise (copies made by ``str``
conversion, the libraries that parsed the backend's answer) is written down in
docs/threat-model.md.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from types import TracebackType

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12
_TAG_BYTES = 16


def wipe(buffer: bytearray) -> None:
    """Overwrite a buffer's bytes in place."""
    if buffer:
        ctypes.memset((ctypes.c_char * len(buffer)).from_buffer(buffer), 0, len(buffer))


@dataclass(frozen=True, slots=True, repr=False)
class SealedSecret:
    """One secret value, encrypted under the process key. Shows no value in any repr."""

    nonce: bytes
    ciphertext: bytes

    def __repr__(self) -> str:
        return "SealedSecret(<sealed>)"


class Plaintext:
    """A decrypted value, valid only inside the ``with`` block that produced it.

    ``bytes_view`` is the wipeable buffer; ``text()`` makes an immutable ``str`` copy for APIs
    that need one (HTTP headers, DSNs): that copy cannot be wiped, so take it as late as possible.
    """

    __slots__ = ("_buffer",)

    def __init__(self, buffer: bytearray) -> None:
        self._buffer = buffer

    def __repr__(self) -> str:
        return "Plaintext(<hidden>)"

    __str__ = __repr__

    @property
    def bytes_view(self) -> memoryview:
        """A view of the plaintext bytes; invalid after the block ends."""
        return memoryview(self._buffer)

    def text(self) -> str:
        """The value as ``str`` (an unwipeable copy)."""
        return self._buffer.decode("utf-8")


class Sealer:
    """Encrypts and decrypts secrets under a key that never leaves this object."""

    def __init__(self) -> None:
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))

    def __repr__(self) -> str:
        return "Sealer(<key hidden>)"

    def seal(self, value: str | bytes | bytearray, *, context: bytes = b"") -> SealedSecret:
        """Encrypt ``value``; ``context`` (e.g. the reference) is bound as associated data."""
        # Encode straight into a wipeable buffer and encrypt from it: no immutable copy is made.
        data = bytearray(value, "utf-8") if isinstance(value, str) else bytearray(value)
        try:
            nonce = os.urandom(_NONCE_BYTES)
            return SealedSecret(nonce, self._aead.encrypt(nonce, data, context))
        finally:
            wipe(data)

    @contextmanager
    def open(self, sealed: SealedSecret, *, context: bytes = b"") -> Iterator[Plaintext]:
        """Decrypt into a buffer that is wiped when the block ends."""
        # Decrypt straight into the buffer that is wiped: decrypt() returns unwipeable bytes.
        # (decrypt_into exists in newer cryptography releases; older ones take the copy.)
        if hasattr(self._aead, "decrypt_into"):
            buffer = bytearray(len(sealed.ciphertext) - _TAG_BYTES)
            self._aead.decrypt_into(sealed.nonce, sealed.ciphertext, context, buffer)
        else:  # pragma: no cover - cryptography < 45
            buffer = bytearray(self._aead.decrypt(sealed.nonce, sealed.ciphertext, context))
        try:
            yield Plaintext(buffer)
        finally:
            wipe(buffer)


@dataclass(slots=True)
class LeaseInfo:
    """A backend lease behind a dynamic secret (Vault/OpenBao ``lease_id`` and its timing)."""

    lease_id: str
    ttl: float
    renewable: bool
    issued_at: float = field(default_factory=time.monotonic)
    renewed_at: float = field(default_factory=time.monotonic)

    def __repr__(self) -> str:
        return (
            f"LeaseInfo(id=…{self.lease_id[-6:]}, ttl={self.ttl:.0f}, renewable={self.renewable})"
        )

    @property
    def expires_at(self) -> float:
        """Monotonic time at which the lease runs out unless renewed."""
        return self.renewed_at + self.ttl

    @property
    def short_id(self) -> str:
        """The lease id's path and last characters: enough to correlate, too little to use."""
        head, _, tail = self.lease_id.rpartition("/")
        return f"{head}/…{tail[-6:]}" if head else f"…{tail[-6:]}"


class Opening(AbstractAsyncContextManager["Plaintext"], AbstractContextManager["Plaintext"]):
    """A plaintext for one block, entered with ``async with`` or ``with``; wiped at its end.

    ``sync`` and ``later`` each give the context manager that decrypts the value, the latter after
    awaiting whatever fetch it needs. ``CredentialBroker.open`` returns one.
    """

    def __init__(
        self,
        sync: Callable[[], AbstractContextManager[Plaintext]],
        later: Callable[[], Awaitable[AbstractContextManager[Plaintext]]],
    ) -> None:
        self._sync = sync
        self._later = later
        self._open: AbstractContextManager[Plaintext] | None = None

    def __repr__(self) -> str:
        return "<Opening credential>"

    def __enter__(self) -> Plaintext:
        self._open = self._sync()
        return self._open.__enter__()

    async def __aenter__(self) -> Plaintext:
        self._open = await self._later()
        return self._open.__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        opened, self._open = self._open, None
        if opened is not None:
            opened.__exit__(kind, exc, tb)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(kind, exc, tb)
