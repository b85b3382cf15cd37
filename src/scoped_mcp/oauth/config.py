"""The ``oauth:`` block of an HTTP ``mcp_proxy``: scopes, an optional pre-registered client, the
store that keeps the grant."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from scoped_mcp.manifest import StrictModel
from scoped_mcp.net.loopback import https_or_loopback

CRED_ONLY = re.compile(r"\$\{cred:([A-Za-z_][A-Za-z0-9_]{0,127})\}")
SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
CLIENT_METADATA_FIELDS = frozenset(
    {"client_name", "client_uri", "logo_uri", "contacts", "tos_uri", "policy_uri", "software_id"}
    | {"software_version", "token_endpoint_auth_method"}
)


def safe_endpoint(url: str) -> bool:
    """Whether a token may be sent to ``url``: https, or plain http to a loopback address."""
    return https_or_loopback(url)


class OAuthConfig(StrictModel):
    """How scoped-mcp obtains and keeps an OAuth grant for one upstream."""

    store: str = Field(
        description="Where the refresh token and client registration live: "
        "file:/path/grant.json (0600, ours; {agent_type} and {agent_id} expand)."
    )
    scopes: list[str] = Field(
        default_factory=list, description="Scopes to ask for (default: what the server says)."
    )
    client_id: str | None = Field(
        default=None,
        description="A pre-registered client id, literal or ${cred:KEY}; without it the client "
        "registers itself (RFC 7591).",
    )
    client_secret: str | None = Field(
        default=None, description="The pre-registered client's secret, as ${cred:KEY}."
    )
    client_metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra client metadata for dynamic registration (client_name, ...).",
    )
    redirect_port: int | None = Field(
        default=None,
        ge=1024,
        le=65535,
        description="A fixed loopback port for the login's redirect, for a pre-registered client "
        "whose server matches redirect URIs exactly (default: a free port).",
    )
    login_timeout: float = Field(
        default=300, gt=0, le=3600, description="Seconds auth login waits for the browser."
    )
    manifest_path: str | None = Field(default=None, exclude=True)
    module_key: str | None = Field(default=None, exclude=True)
    vault: Any = Field(default=None, exclude=True)
    keyring: Any = Field(default=None, exclude=True)
    """The manifest's validated credentials.vault, for a vault: store (set by mcp_proxy)."""

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        scheme, sep, rest = value.partition(":")
        if not sep or not rest.strip("/") or scheme not in ("file", "vault", "keyring"):
            raise ValueError(
                "store must be file:/path/grant.json, vault:mount/path or keyring:service/user"
            )
        if scheme == "file" and not rest.startswith(("/", "~")):
            raise ValueError("store: a file: store needs an absolute path (or one from ~)")
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        for scope in value:
            if not SCOPE.fullmatch(scope):
                raise ValueError(f"scopes: {scope!r} is not an OAuth scope token")
        return value

    @field_validator("client_secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None and not CRED_ONLY.fullmatch(value):
            raise ValueError("client_secret must be a credential reference: ${cred:KEY}")
        return value

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        if value is not None and "${" in CRED_ONLY.sub("", value):
            raise ValueError("client_id: '${' may only start a ${cred:KEY} reference")
        return value

    @field_validator("client_metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - CLIENT_METADATA_FIELDS)
        if unknown:
            raise ValueError(
                f"client_metadata: {', '.join(unknown)} not allowed; allowed: "
                + ", ".join(sorted(CLIENT_METADATA_FIELDS))
            )
        return value

    def credential_keys(self) -> list[str]:
        """The keys ``client_id`` and ``client_secret`` name."""
        found: dict[str, None] = {}
        for value in (self.client_id, self.client_secret):
            if value:
                found.update(dict.fromkeys(CRED_ONLY.findall(value)))
        return list(found)

    def login_command(self) -> str:
        """The command that gives this upstream a new grant."""
        manifest = self.manifest_path or "M"
        return f"scoped-mcp auth login --manifest {manifest} --module {self.module_key or 'KEY'}"


def from_manifest(value: Any, context: Mapping[str, Any]) -> OAuthConfig:
    """The ``oauth:`` block of module ``context["module_key"]``, with what it needs of the rest
    of the manifest: its path (for the login command), and ``credentials.vault`` and
    ``credentials.keyring`` (for those stores). ``ValueError`` for a pydantic error line."""
    parsed = OAuthConfig.model_validate(value, context=dict(context))
    settings = context.get("credential_settings") or {}
    known = "credential_settings" in context  # False when validated outside a manifest
    if parsed.store.startswith("vault:") and known and "vault" not in settings:
        raise ValueError("oauth.store: a vault: store needs credentials.vault (address and login)")
    manifest = context.get("manifest")
    return parsed.model_copy(
        update={
            "manifest_path": str(manifest) if manifest else None,
            "module_key": context.get("module_key"),
            "vault": settings.get("vault"),
            "keyring": settings.get("keyring"),
        }
    )
