"""Behaviour shared by slack_webhook and discord_webhook (one implementation): the webhook URL is
the secret, so no failure may repeat it, and the usual HTTP faults map to short errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoped_mcp.errors import BackendError, InvalidArgument, ManifestError
from tests.services import hostile
from tests.services.checks import assert_clean, failure
from tests.services.fake_http import Reply, serve_http
from tests.services.harness import built_module
from tests.services.webhooks import DISCORD_PATH, SLACK_PATH

pytestmark = pytest.mark.anyio
MODULES = [
    pytest.param("slack_webhook", "SLACK_WEBHOOK_URL", SLACK_PATH, id="slack"),
    pytest.param("discord_webhook", "DISCORD_WEBHOOK_URL", DISCORD_PATH, id="discord"),
]


@pytest.mark.parametrize(("key", "env_key", "path"), MODULES)
async def test_an_echoing_500_does_not_leak_the_webhook_url(
    tmp_path: Path, key: str, env_key: str, path: str
) -> None:
    """A 500 whose body, fields and headers repeat the full webhook URL gives only the status."""
    with serve_http(hostile.echo_500) as server:
        url = server.url + path
        async with built_module(tmp_path, key, {}, {env_key: url}) as built:
            message = await failure(built.module.send("hello"), BackendError)
    assert message.endswith("server error (HTTP 500)")
    assert_clean(message, [url, path, path.rsplit("/", 1)[1]])
    assert server.requests[0].path == path


@pytest.mark.parametrize(("key", "env_key", "path"), MODULES)
async def test_rate_limit_and_redirect(tmp_path: Path, key: str, env_key: str, path: str) -> None:
    """429 is reported with Retry-After; a redirect is not followed and its target sees nothing."""
    with serve_http(hostile.rate_limited) as server:
        async with built_module(tmp_path, key, {}, {env_key: server.url + path}) as built:
            message = await failure(built.module.send("x"), BackendError)
    assert "rate limited (HTTP 429); retry after 17 s" in message
    with serve_http(lambda r: Reply(200, "ok")) as elsewhere:
        target = elsewhere.url + "/elsewhere"
        with serve_http(lambda r: hostile.redirect(target)) as server:
            async with built_module(tmp_path, key, {}, {env_key: server.url + path}) as built:
                assert "redirect" in await failure(built.module.send("x"), BackendError)
    assert elsewhere.requests == []


@pytest.mark.parametrize(("key", "env_key", "path"), MODULES)
async def test_url_scheme_must_be_http(tmp_path: Path, key: str, env_key: str, path: str) -> None:
    """A webhook URL that is not http(s) is refused without naming it; nothing is contacted."""
    url = "gopher://127.0.0.1:9" + path
    async with built_module(tmp_path, key, {}, {env_key: url}) as built:
        message = await failure(built.module.send("x"), BackendError)
    assert env_key in message
    assert_clean(message, [url, path])


@pytest.mark.parametrize(("key", "env_key", "path"), MODULES)
@pytest.mark.parametrize("message", ["", " \n ", "nul \x00 byte", "bidi \u2028 separator"])
async def test_empty_or_control_messages_are_refused(
    tmp_path: Path, key: str, env_key: str, path: str, message: str
) -> None:
    """Empty messages and control characters other than newline and tab are refused unsent."""
    with serve_http(lambda r: Reply(200, "ok")) as server:
        async with built_module(tmp_path, key, {}, {env_key: server.url + path}) as built:
            await failure(built.module.send(message), InvalidArgument)
    assert server.requests == []


@pytest.mark.parametrize(
    ("key", "limit"), [("slack_webhook", 40_001), ("discord_webhook", 2_001)], ids=["s", "d"]
)
async def test_max_chars_cannot_exceed_the_service_limit(
    tmp_path: Path, key: str, limit: int
) -> None:
    """max_chars above the service's own limit is a manifest error at start-up."""
    with pytest.raises(ManifestError) as caught:
        async with built_module(tmp_path, key, {"max_chars": limit}, {}):
            pass
    assert "max_chars" in caught.value.message


def test_payload_shapes_differ_only_by_service() -> None:
    """Both modules are thin subclasses of the one webhook poster."""
    from scoped_mcp.modules._webhook import WebhookModule
    from scoped_mcp.modules.discord_webhook import DiscordWebhookModule
    from scoped_mcp.modules.slack_webhook import SlackWebhookModule

    for cls in (SlackWebhookModule, DiscordWebhookModule):
        assert issubclass(cls, WebhookModule)
        assert [spec.name for spec in cls.tool_specs()] == ["send"]
        assert cls.is_write_only()
    assert (SlackWebhookModule.tool_prefix, DiscordWebhookModule.tool_prefix) == (
        "slack",
        "discord",
    )
