"""Secret references: where one credential key lives.

    env:NAME                              an environment variable of the server process
    file:/run/secrets/agent.yml#KEY       a field of a YAML mapping in a 0600 file we own
    keyring:service/username              an OS keyring entry (split at the last '/')
    vault:secret/scoped-mcp/shared#field  a field of a KV secret (v1 or v2; mount = first segment)
    vault-dynamic:database/creds/ro#field a field of a leased, dynamic Vault/OpenBao secret
    bitwarden:item-id-or-name#field       a field of a Bitwarden/Vaultwarden item (through bw)

``{agent_id}`` and ``{agent_type}`` expand in every reference. This file knows the shape common to
all references; each scheme's backend adds its own rules (``SecretBackend.parse_ref``). Third-party
backends register their scheme through the ``scoped_mcp.secret_backends`` entry-point group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scoped_mcp.errors import ManifestError
from scoped_mcp.identity import AgentContext

_SCHEME = re.compile(r"^([a-z][a-z0-9_-]*):(.+)$", re.DOTALL)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A parsed, expanded reference. ``path`` is what the backend reads; ``field`` the part of it.

    Two references with the same ``scheme`` and ``path`` are served by one read (and, for dynamic
    secrets, one lease).
    """

    scheme: str
    path: str
    field: str | None

    def __str__(self) -> str:
        return f"{self.scheme}:{self.path}" + (f"#{self.field}" if self.field else "")

    @property
    def source(self) -> tuple[str, str]:
        """What one fetch reads: (scheme, path)."""
        return (self.scheme, self.path)


def validate_key(key: str) -> str:
    """A credential key name: letters, digits and _, as environment variables are named."""
    if not _KEY.fullmatch(key):
        raise ManifestError(
            f"credential key {key!r} must be letters, digits and _ (not starting with a digit)"
        )
    return key


def split(text: str, agent_ctx: AgentContext, *, where: str) -> tuple[str, str, str]:
    """``scheme:path[#field]`` as (scheme, path, field), placeholders expanded; ``field`` may be
    empty. The scheme's backend applies its own rules (``SecretBackend.parse_ref``)."""
    match = _SCHEME.match(text.strip())
    if not match:
        raise ManifestError(
            f"{where}: {text!r} is not a secret reference",
            fix="write it as env:NAME, file:/path.yml#KEY, keyring:service/username, "
            "vault:mount/path#field or vault-dynamic:mount/creds/role#field",
        )
    scheme, rest = match.group(1), agent_ctx.expand(match.group(2))
    path, _, field = rest.partition("#")
    if not path or (rest.endswith("#") and not field):
        raise ManifestError(f"{where}: {text!r} has an empty path or field")
    return scheme, path, field
