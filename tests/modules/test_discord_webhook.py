"""DiscordWebhookModule against a fake Discord execute-webhook endpoint on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoped_mcp.errors import BackendError, InvalidArgument
from tests.services.checks import assert_clean, failure
from tests.services.fake_http import Reply, serve_http
from tests.services.harness import built_module
from tests.services.webhooks import DISCORD_PATH, DiscordService

pytestmark = pytest.mark.anyio


async def test_send_posts_content_with_mentions_disabled(tmp_path: Path) -> None:
    """The message arrives as content with allowed_mentions {parse: []} and the configured
    username expanded for the agent; the 204 answer is a success."""
    service = DiscordService()
    with serve_http(service) as server:
        env = {"DISCORD_WEBHOOK_URL": server.url + DISCORD_PATH}
        config = {"username": "agent {agent_id}"}
        async with built_module(tmp_path, "discord_webhook", config, env) as built:
            result = await built.module.send("@everyone nightly build **failed**")
    assert result == {"sent": True, "chars": 34}
    assert service.posts == [
        {
            "content": "@everyone nightly build **failed**",
            "allowed_mentions": {"parse": []},
            "username": "agent agent-01",
        }
    ]
    assert_clean(repr(result), [server.url + DISCORD_PATH])


async def test_allow_mentions_omits_allowed_mentions(tmp_path: Path) -> None:
    """With allow_mentions the payload leaves Discord's default mention parsing on."""
    service = DiscordService()
    with serve_http(service) as server:
        env = {"DISCORD_WEBHOOK_URL": server.url + DISCORD_PATH}
        async with built_module(tmp_path, "discord_webhook", {"allow_mentions": True}, env) as b:
            await b.module.send("@here done")
    assert service.posts == [{"content": "@here done"}]


async def test_content_over_2000_characters_is_refused(tmp_path: Path) -> None:
    """Discord's 2,000-character limit is enforced before sending."""
    with serve_http(DiscordService()) as server:
        env = {"DISCORD_WEBHOOK_URL": server.url + DISCORD_PATH}
        async with built_module(tmp_path, "discord_webhook", {}, env) as built:
            message = await failure(built.module.send("x" * 2001), InvalidArgument)
            await built.module.send("x" * 2000)
    assert "2000 characters" in message
    assert len(server.requests) == 1


async def test_numeric_error_code_is_kept_and_text_is_not(tmp_path: Path) -> None:
    """Discord's numeric error code is repeated; its message text (which could echo anything)
    is not."""
    with serve_http(lambda r: Reply(404, {"message": r.target, "code": 10015})) as server:
        url = server.url + DISCORD_PATH
        async with built_module(tmp_path, "discord_webhook", {}, {"DISCORD_WEBHOOK_URL": url}) as b:
            message = await failure(b.module.send("x"), BackendError)
    assert message == (
        "discord: not found (check the configured URL or name) (HTTP 404) (Discord code 10015)"
    )
    assert_clean(message, [url, DISCORD_PATH])
