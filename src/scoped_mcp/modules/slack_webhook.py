"""slack_webhook module: ``slack_send`` posts to the one channel of ``SLACK_WEBHOOK_URL``.

Slack truncates message text past 40,000 characters, so longer messages are refused instead.
Unless ``allow_mentions`` is set, ``&``, ``<`` and ``>`` are escaped as Slack's formatting rules
describe, which turns ``<!channel>``, ``<!here>`` and ``<@U123>`` into plain text.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import Field

from scoped_mcp.modules._base import tool
from scoped_mcp.modules._webhook import WebhookConfig, WebhookModule, refuse_if_longer
from scoped_mcp.net.client import Response, safe_code

SLACK_TEXT_LIMIT: Final = 40_000
ERROR_CODES: Final = frozenset(
    {
        "invalid_payload", "no_text", "user_not_found", "channel_not_found", "channel_is_archived",
        "action_prohibited", "posting_to_general_channel_denied", "too_many_attachments",
        "no_service", "no_service_id", "no_team", "team_disabled", "invalid_token",
        "missing_text_or_fallback_or_attachments", "rollup_error",
    }
)  # fmt: skip
"""Slack's documented incoming-webhook error bodies; only these are ever repeated to the agent."""
_CODE: Final = re.compile(r"[a-z_]{1,64}")


class SlackWebhookConfig(WebhookConfig):
    """``modules.slack_webhook.config``."""

    max_chars: int = Field(
        default=SLACK_TEXT_LIMIT,
        gt=0,
        le=SLACK_TEXT_LIMIT,
        description="Longest message accepted (Slack truncates past 40,000 characters).",
    )


def escape(text: str) -> str:
    """Slack's control-sequence escaping: &, < and > become entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackWebhookModule(WebhookModule):
    """Post messages to the Slack channel behind this agent's incoming webhook."""

    name = "slack_webhook"
    tool_prefix = "slack"
    required_credentials = ("SLACK_WEBHOOK_URL",)
    config_model = SlackWebhookConfig
    url_key = "SLACK_WEBHOOK_URL"
    service = "slack"
    hard_limit = SLACK_TEXT_LIMIT

    @tool(mode="write")
    async def send(
        self,
        message: Annotated[
            str,
            Field(
                description=f"Text with Slack mrkdwn, at most {SLACK_TEXT_LIMIT:,} characters "
                "(or the operator's lower max_chars); <!channel> and other mentions stay plain "
                "text unless the operator allows them."
            ),
        ],
    ) -> dict[str, Any]:
        """Post a message to your Slack channel (plain text with Slack mrkdwn, up to 40,000
        characters). Mentions such as <!channel> are shown as text unless the operator allows
        them."""
        return await self.post(message)

    def payload(self, message: str) -> dict[str, Any]:
        if self.config.allow_mentions:
            return {"text": message}
        why = "once &, < and > are escaped"
        return {"text": refuse_if_longer(escape(message), SLACK_TEXT_LIMIT, why)}

    def error_code(self, answer: Response) -> str | None:
        code = safe_code(answer.body.decode("utf-8", "replace").strip(), _CODE)
        return code if code in ERROR_CODES else None
