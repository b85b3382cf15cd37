"""Secret backends, one file or package each, behind ``SecretBackend`` in ``interface.py``.

Every backend, the built-in ones included, is a class registered under its scheme in the
``scoped_mcp.secret_backends`` entry-point group (see pyproject.toml). ``Catalog`` scans the group
once, when first asked, and imports only the classes asked for, so a manifest without Vault
references never imports the Vault backend, let alone hvac.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from importlib.metadata import EntryPoint
from typing import TYPE_CHECKING

from scoped_mcp import plugins
from scoped_mcp.credentials.backends.interface import BackendContext, SecretBackend
from scoped_mcp.errors import ManifestError

if TYPE_CHECKING:
    from pydantic import BaseModel

ENTRY_POINT_GROUP = "scoped_mcp.secret_backends"


class Catalog:
    """The installed secret backends by scheme; classes are imported on first use."""

    def __init__(self) -> None:
        self._entries: dict[str, EntryPoint] | None = None
        self._loaded: dict[str, type[SecretBackend]] = {}

    def __repr__(self) -> str:
        return f"Catalog({self.schemes})"

    def _scan(self) -> dict[str, EntryPoint]:
        # Scanning the installed distributions costs milliseconds: once, and only when asked.
        if self._entries is None:
            found = plugins.installed(ENTRY_POINT_GROUP)
            self._entries = {entry.name: entry for entry in found}
        return self._entries

    @property
    def schemes(self) -> list[str]:
        """Every scheme some installed backend registered."""
        return sorted(self._scan())

    def find(self, scheme: str) -> type[SecretBackend] | None:
        """The backend class registered for ``scheme``, or None."""
        if scheme not in self._loaded:
            entry = self._scan().get(scheme)
            if entry is None:
                return None
            cls = entry.load()
            if not (isinstance(cls, type) and issubclass(cls, SecretBackend)):
                raise ManifestError(
                    f"credentials: the {scheme!r} secret backend ({entry.value}) is not a "
                    "SecretBackend subclass",
                    fix="the package that provides it must subclass "
                    "scoped_mcp.credentials.backends.interface.SecretBackend",
                )
            self._loaded[scheme] = cls
        return self._loaded[scheme]

    def get(self, scheme: str) -> type[SecretBackend]:
        """The backend class for ``scheme``; ManifestError naming the choices if there is none."""
        cls = self.find(scheme)
        if cls is None:
            raise ManifestError(
                f"credentials: no secret backend for {scheme!r} references",
                fix=f"use one of {', '.join(self.schemes)}, or install a package that provides "
                f"{scheme!r} in the {ENTRY_POINT_GROUP!r} entry-point group",
            )
        return cls


def load_backends(
    schemes: Iterable[str],
    settings: Mapping[str, BaseModel],
    context: BackendContext,
    *,
    catalog: Catalog | None = None,
) -> dict[str, SecretBackend]:
    """One backend instance per class used; vault and vault-dynamic share one instance.

    ``settings`` are the validated manifest blocks by scheme (``CredentialsSpec.settings``).
    """
    catalog = catalog or Catalog()
    context = replace(context, settings=settings)
    backends: dict[str, SecretBackend] = {}
    for scheme in sorted(set(schemes)):
        if scheme in backends:
            continue
        cls = catalog.get(scheme)
        backend = cls.from_manifest(settings.get(owner_of(cls, scheme)), context)
        for served in backend.schemes:
            backends.setdefault(served, backend)
        backends[scheme] = backend
    return backends


def owner_of(cls: type[SecretBackend], scheme: str) -> str:
    """The name a backend's manifest settings are kept under: its first scheme."""
    return cls.schemes[0] if cls.schemes else scheme
