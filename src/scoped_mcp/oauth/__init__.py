"""OAuth 2.1 upstreams: the broker holds the grant, the upstream sees short-lived access tokens.

``config`` is the ``oauth:`` block of an HTTP ``mcp_proxy``; ``grant`` what is kept about one
grant; ``store/`` where it is kept (``file:``, ``vault:``, ``keyring:``); ``login`` the
operator's one-time interactive login (``scoped-mcp auth login``), built on the MCP SDK's
``OAuthClientProvider``; ``callback`` its loopback redirect receiver; ``refresh`` the refresh
and revocation requests; ``source`` the server's access token (sealed, refreshed, written
back); ``bearer`` the ``httpx2.Auth`` that puts it on each upstream request; ``check`` what
``creds check`` reports.

Nothing here is imported by a manifest without an ``oauth:`` block.
"""
