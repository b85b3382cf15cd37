"""Environment backend: ``env:NAME`` reads a variable of the server process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import ClassVar

from scoped_mcp.credentials.backends.interface import Fetched, Finding, StaticBackend
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import SecretNotFound

NOTE = (
    "environment values are visible to whoever can read this process's environment "
    "(the agent host that started it, and root); prefer file, keyring or vault for shared hosts"
)


class EnvBackend(StaticBackend):
    """Reads credentials from the process environment."""

    schemes: ClassVar[tuple[str, ...]] = ("env",)

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
