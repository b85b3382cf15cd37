"""mcp_proxy's side of an ``oauth:`` block: the token source, built at start-up.

Start-up needs a stored grant (the upstream's tool list needs a token): without one it stops
with the ``auth login`` command that fixes it. Imported only when a manifest has an ``oauth:``.
"""

from __future__ import annotations

import anyio.to_thread

from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import BackendError, CredentialError, ModuleLoadError
from scoped_mcp.identity import AgentContext
from scoped_mcp.oauth.config import CRED_ONLY, OAuthConfig
from scoped_mcp.oauth.source import SecretReader, TokenSource
from scoped_mcp.oauth.store import open_store


async def token_source(
    config: OAuthConfig, agent_ctx: AgentContext, credentials: CredentialView
) -> TokenSource:
    """A ``TokenSource`` over the configured store, holding a live access token."""
    where = f"modules.{config.module_key}.config.oauth.store"
    store = open_store(
        config.store, agent_ctx, where=where, vault=config.vault, keyring=config.keyring
    )
    try:
        grant = await anyio.to_thread.run_sync(store.read)
    except CredentialError as exc:
        await anyio.to_thread.run_sync(store.close)
        raise ModuleLoadError(f"mcp_proxy: {exc.message}", fix=exc.fix) from None
    if grant is None:
        await anyio.to_thread.run_sync(store.close)
        raise ModuleLoadError(
            f"mcp_proxy: no OAuth grant is stored in {store.describe()}",
            fix=f"run `{config.login_command()}` once, as the user that runs this agent",
        )
    source = TokenSource(
        store=store,
        config=config,
        protect=credentials.protect,
        client_secret=_secret_reader(config, credentials),
        record=credentials.record,
        label=config.module_key or "mcp_proxy",
    )
    try:
        await source.header()
    except BackendError as exc:
        await source.close()
        raise ModuleLoadError(f"mcp_proxy: {exc.message}", fix=exc.fix) from None
    return source


def _secret_reader(config: OAuthConfig, credentials: CredentialView) -> SecretReader | None:
    """Reads a pre-registered client's secret from the broker when a refresh needs it."""
    match = CRED_ONLY.fullmatch(config.client_secret or "")
    if match is None:
        return None
    key = match.group(1)

    async def read() -> str | None:
        async with credentials.use(key) as plain:
            return plain.text()

    return read
