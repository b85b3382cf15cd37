"""``credentials.vault``: the Vault backend's manifest block, light enough to load without hvac."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, model_validator

from scoped_mcp.manifest import ManifestPath, StrictModel


class VaultSpec(StrictModel):
    """``credentials.vault``: how the broker reaches and authenticates to Vault/OpenBao."""

    addr: str | list[str] | None = Field(
        default=None,
        description="The server's address, or a list of a cluster's node addresses (tried in "
        "turn when one cannot serve). Default: $VAULT_ADDR, then $BAO_ADDR.",
    )
    auth: Literal["token", "approle"] = Field(
        default="token", description="How the broker authenticates."
    )
    token_env: str | None = Field(
        default=None, description="Environment variable holding the token (auth: token)."
    )
    token_file: ManifestPath | None = Field(
        default=None, description="File holding the token (auth: token)."
    )
    role_id_env: str | None = Field(
        default=None, description="Environment variable holding the AppRole role-id."
    )
    role_id_file: ManifestPath | None = Field(
        default=None, description="File holding the AppRole role-id."
    )
    secret_id_env: str | None = Field(
        default=None,
        description="Environment variable holding the secret-id (read once; may be "
        "response-wrapped).",
    )
    secret_id_file: ManifestPath | None = Field(
        default=None,
        description="File holding the secret-id (read once; may be response-wrapped).",
    )
    secret_id_uses: Literal["reusable", "limited"] = Field(
        default="reusable",
        description="limited: the secret-id has a use limit (secret_id_num_uses), so creds "
        "check never logs in with it and reports its keys unverified. reusable: creds check "
        "logs in with a plain secret-id and revokes its token at once.",
    )
    approle_mount: str = Field(default="approle", description="The AppRole auth mount.")
    path: str | None = Field(
        default=None, description="KV secret whose fields are the keys, for source: vault."
    )
    kv_version: Literal[1, 2] = Field(default=2, description="KV engine version.")
    namespace: str | None = Field(default=None, description="Vault Enterprise namespace.")
    ca_cert: ManifestPath | None = Field(
        default=None, description="CA bundle to verify the server's TLS certificate."
    )
    client_cert: ManifestPath | None = Field(
        default=None,
        description="Client certificate (PEM) for Vault's TLS client auth; also its key, unless "
        "client_key is set. Never taken from $VAULT_CLIENT_CERT.",
    )
    client_key: ManifestPath | None = Field(
        default=None,
        description="Private key of client_cert (PEM; mode 0600, ours). Never taken from "
        "$VAULT_CLIENT_KEY.",
    )
    timeout: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Seconds to wait for Vault to connect and to answer each request; a server "
        "that does not is reported as timed out.",
    )

    lease_ttl: float = Field(
        default=120.0,
        ge=2,
        le=86400,
        description="Seconds the broker's own AppRole token and every dynamic lease are kept "
        "alive for, renewed while the server runs: a server killed without cleaning up leaves "
        "nothing usable for longer. Never longer than the backend grants.",
    )

    def addresses(self, environ: Mapping[str, str]) -> list[str]:
        """The node addresses: ``addr`` (one or a list), else $VAULT_ADDR, then $BAO_ADDR."""
        if isinstance(self.addr, list):
            return list(self.addr)
        found = self.addr or environ.get("VAULT_ADDR") or environ.get("BAO_ADDR")
        return [found] if found else []

    @model_validator(mode="after")
    def _auth_inputs(self) -> VaultSpec:
        if isinstance(self.addr, list) and (not self.addr or not all(self.addr)):
            raise ValueError("addr: a list of node addresses must name at least one, none empty")
        if self.auth == "approle":
            if not (self.role_id_env or self.role_id_file):
                raise ValueError("auth: approle needs role_id_env or role_id_file")
            if not (self.secret_id_env or self.secret_id_file):
                raise ValueError("auth: approle needs secret_id_env or secret_id_file")
        if self.ca_cert is not None and not self.ca_cert.is_file():
            raise ValueError(
                f"ca_cert: {self.ca_cert} is not a file (the CA bundle for Vault's TLS)"
            )
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert (the certificate it belongs to)")
        for name in ("client_cert", "client_key"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {path} is not a file (Vault's TLS client auth)")
        return self
