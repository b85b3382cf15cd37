"""``vault-identity:ROLE``: a signed OIDC identity token for this agent instance, from
Vault/OpenBao's identity secrets engine (``identity/oidc/token/ROLE``).

Every agent of a type logs in with the same AppRole role, hence the same entity alias, whose
metadata each login rewrites: a token template reading it would give one agent another's id
whenever two run at once. So the token is never minted with the broker's own token. For each
one, the broker creates a short-lived child token through the token role of the same name
(``auth/token/create/ROLE``) with ``entity_alias`` set to its ``AGENT_ID``: the child's entity
is this agent instance's own, fixed at creation, and the role's template names it
(``{{identity.entity.aliases.<token accessor>.name}}``). The child mints the JWT and is revoked
at once. ``secrets_backends/vault/identity.sh`` sets up the key, the roles and the policies.

The JWT is cached (sealed, like every value) for two thirds of the TTL Vault states, then
minted again. Uses ``credentials.vault`` for address and login, through a Vault backend of its
own (one more login).
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from pydantic import BaseModel

from scoped_mcp.credentials.backends.interface import (
    BackendContext,
    Fetched,
    Finding,
    SecretBackend,
)
from scoped_mcp.credentials.backends.vault import VaultBackend
from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import BackendUnavailable, CredentialError, ManifestError, SecretNotFound

CHILD_TTL = "60s"
CACHE_FRACTION = 2 / 3


class VaultIdentityBackend(SecretBackend):
    """Mints identity tokens naming this agent instance."""

    schemes: ClassVar[tuple[str, ...]] = ("vault-identity",)

    @classmethod
    def from_manifest(
        cls, settings: BaseModel | None, context: BackendContext
    ) -> VaultIdentityBackend:
        spec = context.settings.get("vault")
        if not isinstance(spec, VaultSpec):
            raise ManifestError(
                "credentials.vault: required when any key uses a vault-identity: reference",
                fix="add credentials.vault with addr and auth (see docs/credentials.md)",
            )
        return cls(VaultBackend(spec, context.environ, approle_login=context.login), context)

    def __init__(self, vault: VaultBackend, context: BackendContext) -> None:
        self._vault = vault
        self._agent_id = context.agent_ctx.agent_id

    def __repr__(self) -> str:
        return f"VaultIdentityBackend({self._vault!r})"

    @classmethod
    def parse_ref(cls, scheme: str, path: str, field: str, *, text: str, where: str) -> SecretRef:
        if field or "/" in path:
            raise ManifestError(
                f"{where}: {text!r}: write vault-identity:ROLE (an identity/oidc role name)",
                fix="e.g. vault-identity:scoped-mcp-{agent_type}",
            )
        return SecretRef(scheme, path, None)

    def fetch(self, ref: SecretRef) -> Fetched:
        role = ref.path
        keeper = self._vault._keeper()
        created = keeper.call(
            "POST",
            f"auth/token/create/{role}",
            json={"entity_alias": self._agent_id, "ttl": CHILD_TTL, "renewable": False},
            capability="update",
        )
        child = _field(created, "auth", "client_token", role)
        connection = self._vault._conn
        assert connection is not None
        try:
            answer = connection.request("GET", f"identity/oidc/token/{role}", token=child)
        finally:
            # On failure it expires within CHILD_TTL anyway.
            with contextlib.suppress(CredentialError):
                connection.request("POST", "auth/token/revoke-self", token=child)
        jwt = _field(answer, "data", "token", role)
        ttl = (answer.get("data") or {}).get("ttl") if isinstance(answer, dict) else None
        cache = max(1.0, float(ttl) * CACHE_FRACTION) if isinstance(ttl, int | float) else None
        return Fetched({None: jwt}, ttl=cache)

    def check(self, ref: SecretRef) -> Finding:
        try:
            fetched = self.fetch(ref)
        except CredentialError as exc:
            return Finding.failed(exc)
        fetched.values.clear()
        return Finding("ok", f"minted an identity token for {self._agent_id} (not kept)")

    def close(self) -> None:
        self._vault.close()


def _field(answer: Any, block: str, name: str, role: str) -> str:
    value = (answer or {}).get(block, {}) if isinstance(answer, dict) else {}
    found = value.get(name) if isinstance(value, dict) else None
    if not isinstance(found, str) or not found:
        if answer is None:
            raise SecretNotFound(f"vault returned nothing for the identity role {role!r}")
        raise BackendUnavailable(f"vault's answer for the identity role {role!r} has no {name}")
    return found
