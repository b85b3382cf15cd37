"""The parts of Slack's incoming webhooks and Discord's execute-webhook API our modules use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.services.fake_http import Recorded, Reply

SLACK_PATH = "/services/T0001/B0002/slackhooksecretXYZ123"
DISCORD_PATH = "/api/webhooks/112233445566778899/discordhooksecretABC789"


@dataclass
class SlackService:
    """``POST`` JSON with ``text`` to the webhook path: 200 "ok"; Slack's error bodies otherwise."""

    posts: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: Recorded) -> Reply:
        if request.method != "POST" or request.path != SLACK_PATH:
            return Reply(404, "no_service")
        data = request.json()
        if not data.get("text"):
            return Reply(400, "no_text")
        self.posts.append(data)
        return Reply(200, "ok")


@dataclass
class DiscordService:
    """``POST`` JSON with ``content`` to the webhook path: 204; Discord's JSON errors otherwise."""

    posts: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: Recorded) -> Reply:
        if request.method != "POST" or request.path != DISCORD_PATH:
            return Reply(404, {"message": "Unknown Webhook", "code": 10015})
        data = request.json()
        if not data.get("content") or len(data["content"]) > 2000:
            return Reply(400, {"message": "Invalid Form Body", "code": 50035})
        self.posts.append(data)
        return Reply(204, b"")
