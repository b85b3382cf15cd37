"""``oauth-client:NAME``: a machine-to-machine access token (OAuth client credentials grant).

The client is described under ``credentials.oauth-client.NAME``: its token endpoint, its id and
secret (themselves references, read through their own backends), scopes and resource (RFC
8707). A fetch asks the token endpoint for a token; the broker seals it and caches it until
shortly before it expires (``expires_in`` less a tenth, at most a minute), so the key is usable
wherever a key is (``http_proxy`` service auth, ``mcp_proxy`` headers, custom modules). The
client secret is handed to the broker as a second field of the read, so it is scrubbed from
every output like the token. No response body reaches an error.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, RootModel, field_validator

from scoped_mcp.credentials import refs
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
    CredentialError,
    SecretNotFound,
)
from scoped_mcp.manifest import StrictModel
from scoped_mcp.net.loopback import is_loopback_host as _loopback

SECRET_FIELD = "client_secret"  # noqa: S105 - a field name, not a secret
MAX_MARGIN = 60.0


class ClientSpec(StrictModel):
    """One OAuth client using the client credentials grant."""

    token_endpoint: str = Field(description="The authorization server's token endpoint.")
    client_id: str = Field(description="A reference to the client id (e.g. env:PARTNER_ID).")
    client_secret: str = Field(description="A reference to the client secret.")
    scopes: list[str] = Field(default_factory=list, description="Scopes to ask for.")
    resource: str | None = Field(default=None, description="The resource (RFC 8707), if any.")
    auth_method: Literal["client_secret_basic", "client_secret_post"] = Field(
        default="client_secret_basic", description="How the client authenticates."
    )
    timeout: float = Field(default=15, gt=0, le=120, description="Seconds per request.")

    @field_validator("token_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.username:
            raise ValueError("token_endpoint must be https://host/path (no user info)")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError("plain http is allowed only to a loopback address")
        return value


class OAuthClients(RootModel[dict[str, ClientSpec]]):
    """``credentials.oauth-client``: client name -> its description."""


class OAuthClientBackend(SecretBackend):
    """Issues access tokens with the client credentials grant."""

    schemes: ClassVar[tuple[str, ...]] = ("oauth-client",)
    config_block: ClassVar[str | None] = "oauth-client"
    config_model: ClassVar[type[BaseModel] | None] = OAuthClients

    def __init__(self, settings: OAuthClients | None, context: BackendContext) -> None:
        self._clients = settings.root if settings is not None else {}
        self._context = context
        self._inner: dict[str, SecretBackend] = {}

    def __repr__(self) -> str:
        return f"OAuthClientBackend(clients={sorted(self._clients)})"

    @classmethod
    def parse_ref(cls, scheme: str, path: str, field: str, *, text: str, where: str) -> SecretRef:
        if field:
            from scoped_mcp.errors import ManifestError

            raise ManifestError(
                f"{where}: {text!r}: an oauth-client reference names a client, not a field",
                fix="write oauth-client:NAME, NAME described under credentials.oauth-client",
            )
        return SecretRef(scheme, path, None)

    def fetch(self, ref: SecretRef) -> Fetched:
        spec = self._spec(ref)
        client_id = self._read(spec.client_id, f"credentials.oauth-client.{ref.path}.client_id")
        secret = self._read(
            spec.client_secret, f"credentials.oauth-client.{ref.path}.client_secret"
        )
        token, lifetime = self._token(spec, client_id, secret)
        ttl = None
        if lifetime is not None:
            ttl = max(1.0, lifetime - min(MAX_MARGIN, lifetime / 10))
        return Fetched({None: token, SECRET_FIELD: secret}, ttl=ttl)

    def check(self, ref: SecretRef) -> Finding:
        try:
            fetched = self.fetch(ref)
        except CredentialError as exc:
            return Finding.failed(exc)
        fetched.values.clear()
        return Finding("ok", "the token endpoint issued a token (not kept)")

    def _spec(self, ref: SecretRef) -> ClientSpec:
        spec = self._clients.get(ref.path)
        if spec is None:
            raise SecretNotFound(
                f"no OAuth client {ref.path!r} is described",
                fix=f"add credentials.oauth-client.{ref.path} (token_endpoint, client_id, "
                "client_secret)",
            )
        return spec

    def _read(self, text: str, where: str) -> str:
        """A client id or secret, read through the backend its reference names."""
        from scoped_mcp.credentials.backends import Catalog, load_backends

        scheme, path, field = refs.split(text, self._context.agent_ctx, where=where)
        if scheme == self.schemes[0]:
            raise BackendMisconfigured(f"{where}: an oauth-client reference cannot name another")
        cls = Catalog().get(scheme)
        inner_ref = cls.parse_ref(scheme, path, field, text=text, where=where)
        if scheme not in self._inner:
            loaded = load_backends([scheme], self._context.settings, self._context)
            self._inner.update(loaded)
        fetched = self._inner[scheme].fetch(inner_ref)
        value = fetched.values.get(inner_ref.field)
        fetched.values.clear()
        if value is None:
            raise SecretNotFound(f"{where}: {inner_ref} has no value")
        return value

    def _token(self, spec: ClientSpec, client_id: str, secret: str) -> tuple[str, float | None]:
        import base64
        from urllib.parse import quote

        from scoped_mcp.net._httpx import httpx

        form = {"grant_type": "client_credentials"}
        if spec.scopes:
            form["scope"] = " ".join(spec.scopes)
        if spec.resource:
            form["resource"] = spec.resource
        headers = {"Accept": "application/json"}
        if spec.auth_method == "client_secret_basic":
            pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        else:
            form |= {"client_id": client_id, "client_secret": secret}
        try:
            with httpx.Client(
                timeout=spec.timeout, follow_redirects=False, trust_env=False
            ) as http:
                response = http.post(spec.token_endpoint, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(
                f"the token endpoint {spec.token_endpoint} could not be reached "
                f"({type(exc).__name__})"
            ) from None
        answer = _json(response)
        if response.status_code in (400, 401, 403):
            error = answer.get("error")
            reason = error if isinstance(error, str) and error.isidentifier() else "no reason"
            raise AccessDenied(
                f"the token endpoint {spec.token_endpoint} refused the client ({reason})",
                fix="check the client id, secret and scopes",
            )
        token = answer.get("access_token")
        if response.status_code != 200 or not isinstance(token, str) or not token:
            raise BackendUnavailable(
                f"the token endpoint {spec.token_endpoint} answered HTTP {response.status_code} "
                "without a token"
            )
        lifetime = answer.get("expires_in")
        return token, float(lifetime) if isinstance(lifetime, int | float) else None

    def close(self) -> None:
        for backend in {id(b): b for b in self._inner.values()}.values():
            backend.close()


def _json(response: Any) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
