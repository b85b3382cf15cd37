"""Keyring backend: ``keyring:service/username`` reads an OS keyring entry.

The keyring backend is chosen explicitly (``credentials.keyring.backend``) or taken from keyring's
own configuration; either way, a backend that could prompt on a terminal or that always fails is
refused, and the backend in use is named in every error.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from scoped_mcp.credentials.backends.interface import (
    BackendContext,
    Fetched,
    Finding,
    SecretBackend,
)
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import (
    AccessDenied,
    BackendMisconfigured,
    BackendUnavailable,
    ManifestError,
    SecretNotFound,
)
from scoped_mcp.manifest import StrictModel

# Backends that ask a human for a password on the terminal, or can never answer.
_REFUSED = {
    "keyrings.alt.file.EncryptedKeyring": "prompts for a password on the terminal",
    "keyring.backends.fail.Keyring": "has no usable keyring (install one, or choose a backend)",
    "keyring.backends.null.Keyring": "is the null keyring, which stores nothing",
}


class KeyringSpec(StrictModel):
    """``credentials.keyring``: the OS keyring entries, one per key (username = key name)."""

    service: str = Field(
        default="scoped-mcp/{agent_type}",
        min_length=1,
        description="Keyring service for source: keyring; the username is the key name.",
    )
    backend: str | None = Field(
        default=None,
        description="The keyring backend class, e.g. 'keyring.backends.SecretService.Keyring'. "
        "Default: keyring's own choice, refused if it could prompt on a terminal.",
    )


def _qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


class KeyringBackend(SecretBackend):
    """Reads credentials from one explicitly chosen, non-interactive keyring backend."""

    schemes: ClassVar[tuple[str, ...]] = ("keyring",)
    config_block: ClassVar[str | None] = "keyring"
    config_model: ClassVar[type[BaseModel] | None] = KeyringSpec
    source_field: ClassVar[str | None] = "service"
    shares_reads: ClassVar[bool] = False  # a read returns the one username asked for

    @classmethod
    def from_manifest(cls, settings: BaseModel | None, context: BackendContext) -> KeyringBackend:
        """The backend for ``credentials.keyring`` (keyring's own choice when there is none)."""
        spec = cls.settings_or_default(settings)
        assert isinstance(spec, KeyringSpec)
        return cls(spec)

    @classmethod
    def parse_ref(cls, scheme: str, path: str, field: str, *, text: str, where: str) -> SecretRef:
        """``keyring:service/username`` (split at the last '/'), or ``keyring:service#username``."""
        if field:
            return SecretRef(scheme, path, field)
        if "/" not in path:
            raise ManifestError(
                f"{where}: {text!r}: a keyring reference is keyring:service/username",
            )
        service, _, username = path.rpartition("/")
        return SecretRef("keyring", service, username)

    def __init__(self, spec: KeyringSpec) -> None:
        self._spec = spec
        self._keyring: Any = None

    def __repr__(self) -> str:
        return f"KeyringBackend(backend={self._spec.backend or 'default'!r})"

    def _backend(self) -> Any:
        if self._keyring is not None:
            return self._keyring
        try:
            if self._spec.backend:
                module_name, _, class_name = self._spec.backend.rpartition(".")
                cls = getattr(importlib.import_module(module_name), class_name)
                chosen = cls()
            else:
                import keyring

                chosen = keyring.get_keyring()
        except (ImportError, AttributeError) as exc:
            raise BackendMisconfigured(
                f"keyring backend {self._spec.backend or 'default'!r} cannot be loaded "
                f"({type(exc).__name__})",
                fix="install the keyring package and the backend's package, or correct "
                "credentials.keyring.backend",
            ) from None
        name = _qualname(chosen)
        if name in _REFUSED:
            raise BackendMisconfigured(
                f"keyring backend {name} {_REFUSED[name]}",
                fix="set credentials.keyring.backend to a non-interactive backend, e.g. "
                "keyring.backends.SecretService.Keyring",
            )
        self._keyring = chosen
        return chosen

    @property
    def backend_name(self) -> str:
        """The fully qualified class of the keyring backend in use."""
        return _qualname(self._backend())

    def fetch(self, ref: SecretRef) -> Fetched:
        backend = self._backend()
        try:
            value = backend.get_password(ref.path, ref.field)
        except Exception as exc:  # noqa: BLE001 - keyring backends raise anything; map at this boundary
            kind = type(exc).__name__
            if "Locked" in kind or "Denied" in kind or "Permission" in kind:
                raise AccessDenied(
                    f"keyring {self.backend_name} refused {ref.path}/{ref.field} ({kind})",
                    fix="unlock the keyring for this user session",
                ) from None
            raise BackendUnavailable(
                f"keyring {self.backend_name} failed reading {ref.path}/{ref.field} ({kind})"
            ) from None
        if value is None:
            raise SecretNotFound(
                f"no entry {ref.field!r} for service {ref.path!r} in keyring {self.backend_name}",
                fix=f"keyring set '{ref.path}' '{ref.field}'",
            )
        return Fetched({ref.field: value})

    def check(self, ref: SecretRef) -> Finding:
        try:
            self.fetch(ref)
        except (SecretNotFound, AccessDenied, BackendUnavailable, BackendMisconfigured) as exc:
            return Finding.failed(exc)
        return Finding("ok", f"keyring backend {self.backend_name}")
