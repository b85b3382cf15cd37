"""``scoped-mcp auth login|status|logout``: the OAuth grants of a manifest's HTTP upstreams.

``login`` runs the interactive flow for one module and stores the grant; ``status`` says, per
OAuth module, whether a grant is stored, its scopes and when the access token expires (it
verifies nothing, so it never says "ok"); ``logout`` revokes at the provider (RFC 7009, where
offered) and deletes. None of them prints a token or a client secret. Exit codes: 0 done, 1 a
grant missing or a step failed, 2 configuration error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from scoped_mcp.oauth.config import OAuthConfig
    from scoped_mcp.oauth.grant import Grant
    from scoped_mcp.oauth.login import Client
    from scoped_mcp.oauth.store import GrantStore

EXIT_OK, EXIT_FAILED = 0, 1


@dataclass(frozen=True, slots=True)
class Target:
    """One OAuth module of the manifest."""

    key: str
    url: str
    config: OAuthConfig
    store: GrantStore


def run(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO | None = None) -> int:
    """The ``auth`` command ``args`` names."""
    out = out or sys.stdout
    targets, context = _targets(args.auth_manifest, args.auth_module, args.auth_agent_id, environ)
    try:
        if args.auth_command == "login":
            return _login(targets[0], context, environ, out)
        if args.auth_command == "status":
            return _status(targets, out)
        return _logout(targets, context, out)
    finally:
        for target in targets:
            target.store.close()


def _targets(
    manifest_path: str, module: str | None, agent_id: str | None, environ: Mapping[str, str]
) -> tuple[list[Target], Any]:
    from scoped_mcp import registry
    from scoped_mcp.errors import ManifestError
    from scoped_mcp.identity import AgentContext
    from scoped_mcp.manifest import load
    from scoped_mcp.modules.mcp_proxy import McpProxyConfig
    from scoped_mcp.oauth.store import open_store

    manifest = load(manifest_path)
    ctx = AgentContext(agent_id or environ.get("AGENT_ID") or "auth", manifest.agent_type)
    planned = registry.plan(manifest)
    found = [
        item
        for item in planned
        if isinstance(item.config, McpProxyConfig) and item.config.oauth is not None
    ]
    if module is not None:
        if module not in manifest.modules:
            raise ManifestError(
                f"--module {module}: the manifest has no module {module!r}",
                fix="choose one of: " + ", ".join(sorted(manifest.modules)),
            )
        found = [item for item in found if item.key == module]
        if not found:
            raise ManifestError(
                f"modules.{module}.config.oauth: module {module!r} has no oauth block",
                fix="add config.oauth (store, scopes) to a url mcp_proxy module",
            )
    targets = []
    for item in found:
        config: OAuthConfig = item.config.oauth
        where = f"modules.{item.key}.config.oauth.store"
        targets.append(
            Target(
                item.key,
                item.config.url,
                config,
                open_store(
                    config.store,
                    ctx,
                    where=where,
                    vault=config.vault,
                    keyring=config.keyring,
                    environ=environ,
                ),
            )
        )
    return targets, (manifest, planned, ctx, environ)


def _login(target: Target, context: Any, environ: Mapping[str, str], out: TextIO) -> int:
    import anyio

    from scoped_mcp.errors import ScopedMCPError
    from scoped_mcp.oauth.login import login

    client = _client(target, context)

    def show(url: str) -> None:
        print(f"Open this URL in a browser to authorize module {target.key}:", file=out)
        print(f"  {url}", file=out, flush=True)
        print(f"Waiting up to {target.config.login_timeout:g}s for the browser...", file=out)
        out.flush()

    async def flow() -> Grant:
        return await login(
            target.url, target.config, target.store, client=client, show=show, environ=environ
        )

    try:
        grant = anyio.run(flow)
    except ScopedMCPError as exc:
        print(f"scoped-mcp: login failed: {exc.diagnostics()}", file=sys.stderr)
        return EXIT_FAILED
    print(f"module {target.key}: logged in; {_describe(grant)}", file=out)
    print(f"grant stored in {target.store.describe()}", file=out)
    return EXIT_OK


def _client(target: Target, context: Any) -> Client | None:
    """A pre-registered client from the manifest, its references read through the broker."""
    from scoped_mcp.oauth.config import CRED_ONLY
    from scoped_mcp.oauth.login import Client

    config = target.config
    if config.client_id is None:
        return None
    values = _read_keys(target.key, config.credential_keys(), context)

    def fill(text: str) -> str:
        return CRED_ONLY.sub(lambda m: values[m.group(1)], text)

    secret = fill(config.client_secret) if config.client_secret else None
    return Client(client_id=fill(config.client_id), client_secret=secret)


def _read_keys(module: str, keys: list[str], context: Any) -> dict[str, str]:
    from scoped_mcp.credentials.backends import Catalog, load_backends
    from scoped_mcp.credentials.backends.interface import BackendContext
    from scoped_mcp.credentials.broker import CredentialBroker
    from scoped_mcp.credentials.plan import build_plans, schemes_used
    from scoped_mcp.redaction import Redactor

    manifest, planned, ctx, environ = context
    if not keys:
        return {}
    catalog = Catalog()
    plans = build_plans(manifest, [p for p in planned if p.key == module], ctx, catalog=catalog)
    backends = load_backends(
        schemes_used(plans),
        manifest.credentials.settings,
        BackendContext(ctx, environ),
        catalog=catalog,
    )
    broker = CredentialBroker(
        plans=plans, backends=backends, ttl=manifest.credentials.ttl, redactor=Redactor()
    )
    values = {}
    try:
        for key in keys:
            with broker.open(module, key) as plain:
                values[key] = plain.text()
    finally:
        for backend in {id(b): b for b in backends.values()}.values():
            backend.close()
    return values


def _describe(grant: Grant) -> str:
    scopes = grant.scope or "(none named)"
    client = "pre-registered" if grant.preregistered else "registered dynamically"
    return f"scopes {scopes}; access token {_expiry(grant.expires_at)}; client {client}"


def _expiry(expires_at: float | None) -> str:
    if expires_at is None:
        return "has no stated expiry"
    when = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    left = round(expires_at - time.time())
    return f"expires {when} (in {left}s)" if left > 0 else f"expired {when} ({-left}s ago)"


def _status(targets: list[Target], out: TextIO) -> int:
    from scoped_mcp.errors import CredentialError

    if not targets:
        print("no module of this manifest has an oauth block", file=out)
        return EXIT_OK
    code = EXIT_OK
    for target in targets:
        try:
            grant = target.store.read()
        except CredentialError as exc:
            print(f"module {target.key}: {exc.message}", file=out)
            code = EXIT_FAILED
            continue
        if grant is None:
            print(f"module {target.key}: no grant stored in {target.store.describe()}", file=out)
            print(f"  fix: {target.config.login_command()}", file=out)
            code = EXIT_FAILED
            continue
        print(f"module {target.key}: grant stored in {target.store.describe()}", file=out)
        print(
            f"  {_describe(grant)}; refresh token {'stored' if grant.refresh_token else 'none'}",
            file=out,
        )
        print("  (not verified: `scoped-mcp creds check` refreshes it to prove it)", file=out)
    return code


def _logout(targets: list[Target], context: Any, out: TextIO) -> int:
    from scoped_mcp.errors import CredentialError
    from scoped_mcp.oauth.refresh import revoke

    code = EXIT_OK
    for target in targets:
        secret = None
        client = _client(target, context) if target.config.client_secret else None
        if client is not None:
            secret = client.client_secret
        try:
            with target.store.locked():
                grant = target.store.read()
                if grant is None:
                    print(f"module {target.key}: no grant stored; nothing to do", file=out)
                    continue
                revoked = revoke(grant, client_secret=secret)
                target.store.delete()
        except CredentialError as exc:
            print(f"module {target.key}: logout failed: {exc.message}; the grant is kept", file=out)
            code = EXIT_FAILED
            continue
        if revoked:
            said = f"revoked at the provider ({', '.join(revoked)})"
        else:
            said = "the provider offers no revocation endpoint; not revoked there"
        print(
            f"module {target.key}: {said}; grant deleted from {target.store.describe()}", file=out
        )
    return code
