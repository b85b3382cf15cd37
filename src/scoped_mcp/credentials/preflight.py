"""Start-up preflight: every required key of every enabled module must be resolvable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from scoped_mcp.errors import CredentialError

if TYPE_CHECKING:
    from scoped_mcp.registry import PlannedModule


def check_required(planned: Sequence[PlannedModule], environ: Mapping[str, str]) -> None:
    """Raise one ``CredentialError`` listing every missing required key, its module and source."""
    missing = [
        (item.key, key)
        for item in planned
        for key in item.cls.required_credentials
        if not environ.get(key)
    ]
    if missing:
        lines = "\n  ".join(
            f"{key} (module {module}, source env): not set" for module, key in missing
        )
        names = " ".join(sorted({key for _, key in missing}))
        raise CredentialError(
            f"missing credentials:\n  {lines}",
            fix=f"set {names} in the environment of the MCP server (the 'env' block of the "
            "MCP client's configuration)",
        )
