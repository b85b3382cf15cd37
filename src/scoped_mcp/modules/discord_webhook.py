"""discord_webhook module: ``discord_send`` posts to the one channel of ``DISCORD_WEBHOOK_URL``.

Discord refuses message content over 2,000 characters, so longer messages are refused here first.
Unless ``allow_mentions`` is set, every message carries ``allowed_mentions: {parse: []}``, so
``@everyone``, ``@here``, user and role mentions render as text and ping nobody.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import Field

from scoped_mcp.modules._base import tool
from scoped_mcp.modules._webhook import WebhookConfig, WebhookModule
from scoped_mcp.net.client import Response

DISCORD_CONTENT_LIMIT: Final = 2000
MAX_ERROR_CODE: Final = 999_999


class DiscordWebhookConfig(WebhookConfig):
    """``modules.discord_webhook.config``."""

    max_chars: int = Field(
        default=DISCORD_CONTENT_LIMIT,
        gt=0,
        le=DISCORD_CONTENT_LIMIT,
        description="Longest message accepted (Discord's limit is 2,000 characters).",
    )
    username: str | None = Field(
        default=None,
        min_length=1,
        max_length=80,
        description="Name the messages are posted under; {agent_id} and {agent_type} expand.",
    )


class DiscordWebhookModule(WebhookModule):
    """Post messages to the Discord channel behind this agent's webhook."""

    name = "discord_webhook"
    tool_prefix = "discord"
    required_credentials = ("DISCORD_WEBHOOK_URL",)
    config_model = DiscordWebhookConfig
    url_key = "DISCORD_WEBHOOK_URL"
    service = "discord"
    hard_limit = DISCORD_CONTENT_LIMIT
    config: DiscordWebhookConfig

    @tool(mode="write")
    async def send(
        self,
        message: Annotated[
            str,
            Field(
                description=f"Markdown text, at most {DISCORD_CONTENT_LIMIT:,} characters (or "
                "the operator's lower max_chars); @everyone and other mentions ping nobody "
                "unless the operator allows them."
            ),
        ],
    ) -> dict[str, Any]:
        """Post a message to your Discord channel (Markdown, up to 2,000 characters). Mentions
        such as @everyone ping nobody unless the operator allows them."""
        return await self.post(message)

    def payload(self, message: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"content": message}
        if not self.config.allow_mentions:
            payload["allowed_mentions"] = {"parse": []}
        if self.config.username:
            payload["username"] = self.agent_ctx.expand(self.config.username)[:80]
        return payload

    def error_code(self, answer: Response) -> str | None:
        body = answer.json()
        code = body.get("code") if isinstance(body, dict) else None
        if isinstance(code, int) and not isinstance(code, bool) and 0 < code <= MAX_ERROR_CODE:
            return f"Discord code {code}"
        return None
