"""``HttpModule``: the base of modules that call one HTTP service through ``scoped_mcp.net``.

A subclass declares where its credentials are (``url_key``, ``token_key``) and the service's
name for error messages; the client is built here, opened in ``startup`` and closed in
``shutdown``, and the credentials are added by ``CredentialAuth`` inside each request.
"""

from __future__ import annotations

from typing import ClassVar

from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import ToolModule
from scoped_mcp.net.auth import CredentialAuth
from scoped_mcp.net.client import HttpConfig, HttpService


class HttpModule(ToolModule):
    """A module whose tools call one HTTP service (``self._http``).

    Class attributes a subclass sets:
      service          the name errors start with ("matrix: ...")
      url_key          the credential holding the service's base URL (for webhooks, the URL)
      token_key        the credential holding a token, if any; ``token_optional`` when it may
                       be missing; ``auth_scheme`` the Authorization scheme it is sent with
    """

    service: ClassVar[str]
    url_key: ClassVar[str]
    token_key: ClassVar[str | None] = None
    token_optional: ClassVar[bool] = False
    auth_scheme: ClassVar[str] = "Bearer"
    config: HttpConfig

    def __init__(
        self, agent_ctx: AgentContext, credentials: CredentialView, config: HttpConfig
    ) -> None:
        super().__init__(agent_ctx, credentials, config)
        auth = CredentialAuth(
            credentials,
            url_key=self.url_key,
            token_key=self.token_key,
            token_optional=self.token_optional,
            scheme=self.auth_scheme,
        )
        self._http = HttpService(self.service, auth, config)

    async def startup(self) -> None:
        """Open the HTTP client (no connection is made until the first call)."""
        await self._http.open()

    async def shutdown(self) -> None:
        """Close the HTTP client."""
        await self._http.close()
