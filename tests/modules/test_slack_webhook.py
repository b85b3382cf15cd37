"""SlackWebhookModule against a fake Slack incoming webhook on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoped_mcp.errors import BackendError, InvalidArgument
from tests.services.checks import assert_clean, failure
from tests.services.fake_http import Reply, serve_http
from tests.services.harness import built_module
from tests.services.webhooks import SLACK_PATH, SlackService

pytestmark = pytest.mark.anyio


async def test_send_posts_text_with_mentions_escaped(tmp_path: Path) -> None:
    """The message arrives as {"text": ...} at the webhook path with <, > and & escaped, so
    <!channel> pings nobody; the result holds no URL."""
    service = SlackService()
    with serve_http(service) as server:
        env = {"SLACK_WEBHOOK_URL": server.url + SLACK_PATH}
        async with built_module(tmp_path, "slack_webhook", {}, env) as built:
            result = await built.module.send("<!channel> build *failed* & rolled back")
    assert result == {"sent": True, "chars": 39}
    assert service.posts == [{"text": "&lt;!channel&gt; build *failed* &amp; rolled back"}]
    assert_clean(repr(result), [server.url + SLACK_PATH])


async def test_allow_mentions_sends_text_unchanged(tmp_path: Path) -> None:
    """With allow_mentions the text is sent as given."""
    service = SlackService()
    with serve_http(service) as server:
        env = {"SLACK_WEBHOOK_URL": server.url + SLACK_PATH}
        config = {"allow_mentions": True}
        async with built_module(tmp_path, "slack_webhook", config, env) as built:
            await built.module.send("<!here> deploy done")
    assert service.posts == [{"text": "<!here> deploy done"}]


async def test_length_limits(tmp_path: Path) -> None:
    """max_chars is enforced, and so is Slack's 40,000 after escaping; nothing is sent."""
    with serve_http(SlackService()) as server:
        env = {"SLACK_WEBHOOK_URL": server.url + SLACK_PATH}
        async with built_module(tmp_path, "slack_webhook", {"max_chars": 100}, env) as built:
            assert "100 characters" in await failure(built.module.send("x" * 101), InvalidArgument)
        async with built_module(tmp_path, "slack_webhook", {}, env) as built:
            message = await failure(built.module.send("<" * 10_001), InvalidArgument)
            assert "escaped" in message
    assert server.requests == []


async def test_known_error_codes_are_named_and_unknown_bodies_are_not(tmp_path: Path) -> None:
    """Slack's documented error body (channel_not_found) is repeated; any other body is not."""
    bodies = iter([Reply(404, "channel_not_found"), Reply(403, "slackhooksecretxyz")])
    with serve_http(lambda r: next(bodies)) as server:
        env = {"SLACK_WEBHOOK_URL": server.url + SLACK_PATH}
        async with built_module(tmp_path, "slack_webhook", {}, env) as built:
            first = await failure(built.module.send("x"), BackendError)
            second = await failure(built.module.send("x"), BackendError)
    assert first == (
        "slack: not found (check the configured URL or name) (HTTP 404) (channel_not_found)"
    )
    assert second == "slack: the credential is not allowed to do this (HTTP 403)"
