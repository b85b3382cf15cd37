"""``scoped-mcp auth login``: the operator's one-time interactive login, on the MCP SDK's client.

``OAuthClientProvider`` does the protocol: the upstream's 401 leads to protected-resource
metadata (RFC 9728) and authorization-server metadata (RFC 8414), dynamic client registration
(RFC 7591) unless a client is configured, the authorization code grant with PKCE S256 and
``resource`` (RFC 8707) on the authorization and token requests. This file supplies what the
SDK leaves to its caller: a loopback redirect on 127.0.0.1 and a free port (``callback``), the
URL printed (and a browser opened only on a desktop), a time limit, and the result written to
the store as one ``Grant`` that also keeps the discovered token and revocation endpoints and the
resource, which the SDK's ``TokenStorage`` protocol has no place for.
"""

from __future__ import annotations

import contextlib
import time
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.exceptions import OAuthFlowError, OAuthRegistrationError, OAuthTokenError
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp_types import LATEST_PROTOCOL_VERSION

from scoped_mcp.errors import CredentialError, ScopedMCPError
from scoped_mcp.oauth.callback import LoginRefused, LoopbackCallback
from scoped_mcp.oauth.config import OAuthConfig, safe_endpoint
from scoped_mcp.oauth.grant import Grant
from scoped_mcp.oauth.store import GrantStore

CLIENT_NAME = "scoped-mcp"


class LoginFailed(ScopedMCPError):
    """The login did not complete; the message says which step, never a token."""


@dataclass(frozen=True, slots=True)
class Client:
    """A pre-registered client (id and, for a confidential client, its secret)."""

    client_id: str
    client_secret: str | None = field(repr=False)


class _Memory:
    """The SDK's ``TokenStorage`` for one login: held here until the grant is stored whole."""

    def __init__(self, client: OAuthClientInformationFull | None) -> None:
        self.tokens: OAuthToken | None = None
        self.client = client

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def desktop(environ: Mapping[str, str]) -> bool:
    """Whether a browser can be opened here (a graphical session)."""
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


async def login(
    url: str,
    config: OAuthConfig,
    store: GrantStore,
    *,
    client: Client | None,
    show: Callable[[str], None],
    environ: Mapping[str, str],
) -> Grant:
    """Run the flow against the upstream at ``url``, store the grant, and return it."""
    callback = LoopbackCallback(config.redirect_port or 0)
    await callback.start()
    metadata = _metadata(config, callback.redirect_uri, client)
    preregistered = None
    if client is not None:
        preregistered = OAuthClientInformationFull(
            client_id=client.client_id,
            client_secret=client.client_secret,
            **metadata.model_dump(exclude_none=True),
        )
    storage = _Memory(preregistered)

    async def redirect(authorization_url: str) -> None:
        show(authorization_url)
        if desktop(environ):
            webbrowser.open(authorization_url)

    provider = OAuthClientProvider(
        url, metadata, storage, redirect_handler=redirect, callback_handler=callback.wait
    )
    try:
        with anyio.fail_after(config.login_timeout):
            await _trigger(url, provider)
    except TimeoutError:
        raise LoginFailed(
            f"no answer from the browser within {config.login_timeout:g}s",
            fix="run the command again and open the URL it prints",
        ) from None
    except LoginRefused:
        raise
    except (OAuthFlowError, OAuthRegistrationError, OAuthTokenError) as exc:
        # Their texts can quote a response body: name the step only.
        raise LoginFailed(f"the OAuth flow failed ({type(exc).__name__})") from None
    except httpx2.HTTPError as exc:
        raise LoginFailed(f"the upstream could not be reached ({type(exc).__name__})") from None
    finally:
        await callback.close()
    grant = _grant(url, provider, storage, preregistered=client is not None)
    await anyio.to_thread.run_sync(_write, store, grant)
    return grant


def _metadata(config: OAuthConfig, redirect_uri: str, client: Client | None) -> OAuthClientMetadata:
    fields: dict[str, Any] = {"client_name": CLIENT_NAME, **config.client_metadata}
    if client is not None and "token_endpoint_auth_method" not in fields:
        fields["token_endpoint_auth_method"] = (
            "client_secret_post" if client.client_secret else "none"
        )
    return OAuthClientMetadata(
        redirect_uris=[redirect_uri],  # type: ignore[list-item]
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        scope=" ".join(config.scopes) or None,
        **fields,
    )


async def _trigger(url: str, provider: OAuthClientProvider) -> None:
    """One MCP ``initialize`` POST: its 401 starts the SDK's flow, which retries it."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": LATEST_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": CLIENT_NAME, "version": "login"},
        },
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": LATEST_PROTOCOL_VERSION,
    }
    async with httpx2.AsyncClient(
        auth=provider, follow_redirects=False, trust_env=False, timeout=30
    ) as http:
        response = await http.post(url, json=body, headers=headers)
        if response.status_code in (401, 403):
            raise LoginFailed(
                f"the upstream refused the new token (HTTP {response.status_code})",
                fix="check the scopes in oauth.scopes",
            )
        session = response.headers.get("mcp-session-id")
        if session:  # end the session the login opened
            await http.delete(url, headers={**headers, "mcp-session-id": session})


def _grant(
    url: str, provider: OAuthClientProvider, storage: _Memory, *, preregistered: bool
) -> Grant:
    context = provider.context
    tokens, client = storage.tokens, storage.client
    if tokens is None or client is None or client.client_id is None:
        raise LoginFailed("the authorization server returned no token")
    metadata = context.oauth_metadata
    if metadata is None:
        raise LoginFailed("the upstream published no authorization server metadata (RFC 8414)")
    for name, endpoint in (
        ("token endpoint", str(metadata.token_endpoint)),
        ("revocation endpoint", str(metadata.revocation_endpoint or "")),
    ):
        if endpoint and not safe_endpoint(endpoint):
            raise LoginFailed(
                f"the authorization server's {name} is not https (or http to a loopback address)",
                fix="use an upstream whose authorization server is served over https",
            )
    now = time.time()
    return Grant(
        server_url=url,
        resource=context.get_resource_url(),
        token_endpoint=str(metadata.token_endpoint),
        revocation_endpoint=str(metadata.revocation_endpoint)
        if metadata.revocation_endpoint
        else None,
        issuer=str(metadata.issuer),
        client_id=client.client_id,
        client_secret=None if preregistered else client.client_secret,
        auth_method=client.token_endpoint_auth_method,
        preregistered=preregistered,
        scope=tokens.scope,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        issued_at=now,
        expires_at=now + tokens.expires_in if tokens.expires_in is not None else None,
    )


def _write(store: GrantStore, grant: Grant) -> None:
    """Replace whatever grant is stored (a new login supersedes it)."""
    with store.locked():
        # Read first: a check-and-set store writes against the version it saw. An unreadable
        # old grant is replaced as well.
        with contextlib.suppress(CredentialError):
            store.read()
        store.write(grant)
