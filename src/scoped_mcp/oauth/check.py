"""What ``creds check`` says about each OAuth module's grant, proven or not said to be ``ok``.

``ok`` only when the upstream accepted the stored access token, or the authorization server
accepted the refresh token (the rotated grant is written back under the store's lock, as the
server would). A refused refresh gives the same message the proxied tools answer. Nothing here
starts an interactive flow.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx2

from scoped_mcp.credentials.backends.interface import Finding
from scoped_mcp.errors import CredentialError, ManifestError
from scoped_mcp.identity import AgentContext
from scoped_mcp.oauth.config import OAuthConfig
from scoped_mcp.oauth.grant import Grant
from scoped_mcp.oauth.refresh import GrantRefused, client, refresh
from scoped_mcp.oauth.store import GrantStore, open_store

PROBE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "scoped-mcp", "version": "creds-check"},
    },
}


def findings(planned: Sequence[Any], agent_ctx: AgentContext) -> dict[str, Finding]:
    """One finding per module with an ``oauth:`` block, by module key."""
    out: dict[str, Finding] = {}
    for item in planned:
        config = getattr(item.config, "oauth", None)
        if isinstance(config, OAuthConfig):
            out[item.key] = check(str(item.config.url), config, agent_ctx)
    return out


def check(url: str, config: OAuthConfig, agent_ctx: AgentContext) -> Finding:
    """Is this module's grant usable now? Refreshes it if it must, to prove it."""
    expired = f"upstream authorization expired: run `{config.login_command()}`"
    try:
        where = f"modules.{config.module_key}.config.oauth.store"
        store = open_store(
            config.store, agent_ctx, where=where, vault=config.vault, keyring=config.keyring
        )
        try:
            with store.locked():
                return _check_locked(url, config, store, expired)
        finally:
            store.close()
    except GrantRefused:
        return Finding("denied", expired, fix=config.login_command())
    except ManifestError as exc:
        return Finding("broken", exc.message, fix=exc.fix)
    except CredentialError as exc:
        return Finding.failed(exc)


def _check_locked(url: str, config: OAuthConfig, store: GrantStore, expired: str) -> Finding:
    grant = store.read()
    if grant is None:
        return Finding(
            "missing", f"no OAuth grant stored in {store.describe()}", fix=config.login_command()
        )
    if grant.fresh(time.time()) and _accepted(url, grant):
        return Finding("ok", "the upstream accepted the stored access token")
    if grant.preregistered and config.client_secret:
        return Finding(
            "unverified",
            "the access token is due for refresh and the pre-registered client's secret is not "
            "read by creds check; the server will refresh it",
        )
    store.write(refresh(grant))
    return Finding("ok", "the authorization server accepted the refresh token (rotation stored)")


def _accepted(url: str, grant: Grant) -> bool:
    headers = {
        "Authorization": f"Bearer {grant.access_token}",
        "Accept": "application/json, text/event-stream",
    }
    try:
        with client() as http:
            response = http.post(url, json=PROBE, headers=headers)
    except httpx2.HTTPError:
        return False
    return response.status_code not in (401, 403)
