"""The refresh-token grant and RFC 7009 revocation, from a stored ``Grant``.

Why not the MCP SDK's refresh: ``OAuthClientProvider`` refreshes only inside its own auth flow,
from metadata it discovered in the same process. After a restart it holds no authorization
server metadata, so it would send the refresh to ``{origin}/token`` and drop ``resource``
(RFC 8707) unless the request happens to carry a protocol-version header; it writes a rotated
refresh token back with no compare-and-set; and on a 401 it starts the interactive flow, which
a server must never do. The grant kept by ``auth login`` holds the discovered token endpoint and
resource, so this file sends one form POST with both, every time.
"""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import quote

import httpx2

from scoped_mcp.errors import AccessDenied, BackendUnavailable
from scoped_mcp.oauth.grant import Grant

TIMEOUT = httpx2.Timeout(15.0)


class GrantRefused(AccessDenied):
    """The authorization server refused the refresh token for good (revoked, expired)."""


def client(timeout: httpx2.Timeout = TIMEOUT) -> httpx2.Client:
    """A client without ambient proxy settings or redirects (a token must not follow one)."""
    return httpx2.Client(timeout=timeout, follow_redirects=False, trust_env=False)


def client_auth(
    grant: Grant, data: dict[str, str], client_secret: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """The form and headers authenticating the client (RFC 6749 section 2.3.1)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    secret = client_secret or grant.client_secret
    data = {**data, "client_id": grant.client_id}
    if secret and grant.auth_method == "client_secret_basic":
        pair = f"{quote(grant.client_id, safe='')}:{quote(secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    elif secret:
        data["client_secret"] = secret
    return data, headers


def refresh(grant: Grant, *, client_secret: str | None = None) -> Grant:
    """The grant after one refresh; ``GrantRefused`` if refused, ``BackendUnavailable`` if the
    server could not be asked."""
    if not grant.refresh_token:
        raise GrantRefused("no refresh token is stored")
    form = {
        "grant_type": "refresh_token",
        "refresh_token": grant.refresh_token,
        "resource": grant.resource,
    }
    if grant.scope:
        form["scope"] = grant.scope
    data, headers = client_auth(grant, form, client_secret)
    try:
        with client() as http:
            response = http.post(grant.token_endpoint, data=data, headers=headers)
    except httpx2.HTTPError as exc:
        raise BackendUnavailable(
            f"the token endpoint could not be reached ({type(exc).__name__})"
        ) from None
    answer = _json(response)
    if response.status_code in (400, 401, 403):
        error = answer.get("error") if isinstance(answer.get("error"), str) else None
        raise GrantRefused(f"the authorization server refused the refresh ({error or 'no reason'})")
    if response.status_code != 200 or not isinstance(answer.get("access_token"), str):
        raise BackendUnavailable(f"the token endpoint answered HTTP {response.status_code}")
    return grant.with_tokens(answer, time.time())


def revoke(grant: Grant, *, client_secret: str | None = None) -> list[str]:
    """Revoke the refresh and access tokens (RFC 7009); what was revoked, by kind."""
    if not grant.revocation_endpoint:
        return []
    done = []
    for kind in ("refresh_token", "access_token"):
        token = getattr(grant, kind)
        if not token:
            continue
        data, headers = client_auth(grant, {"token": token, "token_type_hint": kind}, client_secret)
        try:
            with client() as http:
                response = http.post(grant.revocation_endpoint, data=data, headers=headers)
        except httpx2.HTTPError as exc:
            raise BackendUnavailable(
                f"the revocation endpoint could not be reached ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            raise BackendUnavailable(
                f"the revocation endpoint answered HTTP {response.status_code}"
            )
        done.append(kind)
    return done


def _json(response: httpx2.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
