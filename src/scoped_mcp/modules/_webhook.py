"""The shared webhook poster behind ``slack_webhook`` and ``discord_webhook``.

A webhook URL is both the address and the credential: whoever has it can post to the channel. It
is held by the broker and attached by ``CredentialAuth`` inside the request, so this code and the
agent never see it, and it never appears in a result or error (errors carry the status and, at
most, an error code from the service's fixed vocabulary). One webhook is one channel, so the tool
takes only the message. Subclasses supply the payload shape, their length limit and their error
vocabulary; mentions (``@everyone``, ``<!channel>``) are disabled unless ``allow_mentions``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from scoped_mcp.errors import InvalidArgument
from scoped_mcp.modules._http_module import HttpModule
from scoped_mcp.modules._notify import check_text
from scoped_mcp.net.client import HttpConfig, Response


class WebhookConfig(HttpConfig):
    """Settings every webhook module has; subclasses bound ``max_chars`` by their service."""

    max_chars: int = Field(gt=0, description="Longest message accepted.")
    allow_mentions: bool = Field(
        default=False,
        description="Let messages ping people or the whole channel (@everyone, <!channel>).",
    )


class WebhookModule(HttpModule):
    """Posts one message per call to the webhook URL held in credential ``url_key``."""

    hard_limit: ClassVar[int]
    config: WebhookConfig

    def max_chars(self) -> int:
        """The configured message limit, never above the service's own."""
        return min(self.config.max_chars, self.hard_limit)

    async def post(self, message: str) -> dict[str, Any]:
        """Check ``message``, post it as the service's payload, and report what was sent."""
        check_text(message, "message", max_chars=self.max_chars())
        payload = self.payload(message)
        answer = await self._http.call("POST", "/", payload)
        if not answer.ok:
            raise self._http.error(answer, code=self.error_code(answer))
        return {"sent": True, "chars": len(message)}

    def payload(self, message: str) -> dict[str, Any]:
        """The JSON body for ``message``."""
        raise NotImplementedError

    def error_code(self, answer: Response) -> str | None:
        """An error code from the service's fixed vocabulary found in ``answer``, if any."""
        return None


def refuse_if_longer(text: str, limit: int, why: str) -> str:
    """``text`` if it is at most ``limit`` characters, else ``InvalidArgument`` saying ``why``."""
    if len(text) > limit:
        raise InvalidArgument(f"message is longer than {limit:,} characters {why}")
    return text
