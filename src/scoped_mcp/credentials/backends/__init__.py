"""Secret backends, one file each, behind the ``SecretBackend`` interface in ``interface.py``.

``load_backends`` builds only the backends a manifest's references use, so a manifest without
Vault references never imports hvac. Third-party backends come from the
``scoped_mcp.secret_backends`` entry-point group: a class taking ``(spec, agent_ctx, environ)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from scoped_mcp.credentials.backends.interface import SecretBackend
from scoped_mcp.errors import ManifestError
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import CredentialsSpec

if TYPE_CHECKING:
    from scoped_mcp.credentials.backends.vault_auth import AppRoleLogin

ENTRY_POINT_GROUP = "scoped_mcp.secret_backends"
BUILTIN_SCHEMES = ("env", "file", "keyring", "vault", "vault-dynamic", "bitwarden")


def _builtin(
    scheme: str,
    spec: CredentialsSpec,
    agent_ctx: AgentContext,
    environ: Mapping[str, str],
    approle_login: AppRoleLogin,
) -> SecretBackend:
    if scheme == "env":
        from scoped_mcp.credentials.backends.env import EnvBackend

        return EnvBackend(environ)
    if scheme == "file":
        from scoped_mcp.credentials.backends.file import FileBackend

        return FileBackend(unsafe_allow_insecure_file=spec.unsafe_allow_insecure_file)
    if scheme == "keyring":
        from scoped_mcp.credentials.backends.keyring import KeyringBackend

        return KeyringBackend(spec.keyring)
    if scheme == "bitwarden":
        from scoped_mcp.credentials.backends.bitwarden import BitwardenBackend
        from scoped_mcp.manifest import BitwardenSpec

        return BitwardenBackend(spec.bitwarden or BitwardenSpec(), environ)
    from scoped_mcp.credentials.backends.vault import VaultBackend

    if spec.vault is None:
        raise ManifestError(
            "credentials.vault: required when any key uses a vault: or vault-dynamic: reference",
            fix="add credentials.vault with addr and auth (see docs/credentials.md)",
        )
    return VaultBackend(spec.vault, environ, approle_login=approle_login)


def load_backends(
    schemes: Iterable[str],
    spec: CredentialsSpec,
    agent_ctx: AgentContext,
    environ: Mapping[str, str],
    *,
    approle_login: AppRoleLogin = "unwrap",
) -> dict[str, SecretBackend]:
    """One backend instance per scheme used; vault and vault-dynamic share one instance.

    ``approle_login`` is what Vault's AppRole login may spend (see ``vault_auth.py``): the server
    unwraps and logs in; ``creds check`` passes ``"never"`` or ``"plain-only"``.
    """
    backends: dict[str, SecretBackend] = {}
    for scheme in sorted(set(schemes)):
        if scheme in backends:
            continue
        if scheme in BUILTIN_SCHEMES:
            backend = _builtin(scheme, spec, agent_ctx, environ, approle_login)
        else:
            backend = _from_entry_point(scheme, spec, agent_ctx, environ)
        for served in getattr(backend, "schemes", (scheme,)):
            backends.setdefault(served, backend)
        backends[scheme] = backend
    return backends


def _from_entry_point(
    scheme: str, spec: CredentialsSpec, agent_ctx: AgentContext, environ: Mapping[str, str]
) -> SecretBackend:
    for entry in entry_points(group=ENTRY_POINT_GROUP, name=scheme):
        cls = entry.load()
        backend: SecretBackend = cls(spec, agent_ctx, environ)
        return backend
    raise ManifestError(
        f"credentials: no secret backend for {scheme!r} references",
        fix=f"use one of {', '.join(BUILTIN_SCHEMES)}, or install a package that provides "
        f"{scheme!r} in the {ENTRY_POINT_GROUP!r} entry-point group",
    )
