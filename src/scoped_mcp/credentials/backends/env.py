"""Environment backend: ``env:NAME`` reads a variable of the server process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from scoped_mcp.credentials.backends.interface import (
    BackendContext,
    Fetched,
    Finding,
    SecretBackend,
)
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import SecretNotFound

if TYPE_CHECKING:
    from pydantic import BaseModel

NOTE = (
    "environment values are visible to whoever can read this process's environment "
    "(the agent host that started it, and root); prefer file, keyring or vault for shared hosts"
)


class EnvBackend(SecretBackend):
    """Reads credentials from the process environment; ``env:NAME`` reads ``NAME``."""

    schemes: ClassVar[tuple[str, ...]] = ("env",)

    @classmethod
    def from_manifest(cls, settings: BaseModel | None, context: BackendContext) -> EnvBackend:
        """The server's environment as the agent host gave it."""
        return cls(context.environ)

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def __repr__(self) -> str:
        return "EnvBackend()"

    def fetch(self, ref: SecretRef) -> Fetched:
        value = self._environ.get(ref.path)
        if not value:
            raise SecretNotFound(
                f"{ref.path} is not set in the server's environment",
                fix=f"set {ref.path} in the env block of the MCP client's configuration for "
                "this server",
            )
        return Fetched({ref.field: value})

    def check(self, ref: SecretRef) -> Finding:
        if not self._environ.get(ref.path):
            return Finding("missing", f"{ref.path} is not set", fix=f"export {ref.path}=...")
        return Finding("ok", NOTE)
