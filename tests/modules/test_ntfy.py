"""NtfyModule against a fake ntfy server on 127.0.0.1: what arrives, what is refused, what leaks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scoped_mcp.errors import BackendError, InvalidArgument, ManifestError
from tests.services import hostile
from tests.services.checks import assert_clean, failure
from tests.services.fake_http import Recorded, Reply, serve_http
from tests.services.harness import built_module
from tests.services.ntfy import NtfyService

pytestmark = pytest.mark.anyio
TOKEN = "tk_ntfysecret0123456789abcdef"
CONFIG: dict[str, Any] = {"topic": "research-{agent_id}", "max_priority": "high"}


async def test_send_publishes_to_the_agent_topic_with_bearer_token(tmp_path: Path) -> None:
    """A send arrives as JSON on the agent's own topic, with the token as a Bearer header and
    every optional field, and the result carries neither the token nor the URL."""
    service = NtfyService(token=TOKEN)
    with serve_http(service) as server:
        env = {"NTFY_URL": server.url, "NTFY_TOKEN": TOKEN}
        async with built_module(tmp_path, "ntfy", CONFIG, env) as built:
            result = await built.module.send(
                "disk at 94%",
                title="High disk",
                priority="high",
                tags=["warning", "floppy_disk"],
                click="https://grafana.example/d/1",
            )
    assert result == {"sent": True, "priority": "high", "priority_lowered": False, "id": "msg0001"}
    (request,) = server.requests
    assert request.header("authorization") == f"Bearer {TOKEN}"
    assert request.header("host") == f"127.0.0.1:{server.port}"
    assert service.messages == [
        {
            "topic": "research-agent-01",
            "message": "disk at 94%",
            "title": "High disk",
            "tags": ["warning", "floppy_disk"],
            "click": "https://grafana.example/d/1",
            "priority": 4,
        }
    ]
    assert_clean(repr(result), [TOKEN, server.url])


async def test_without_token_no_authorization_header_is_sent(tmp_path: Path) -> None:
    """NTFY_TOKEN is optional: without it requests carry no Authorization header, and its absence
    is not re-read from the backend on every call."""
    service = NtfyService()
    with serve_http(service) as server:
        async with built_module(tmp_path, "ntfy", CONFIG, {"NTFY_URL": server.url}) as built:
            await built.module.send("hello")
            await built.module.send("again")
    assert [r.header("authorization") for r in server.requests] == [None, None]
    assert service.messages[0]["priority"] == 3
    audit = (tmp_path / "audit-ntfy.jsonl").read_text()
    assert audit.count('"NTFY_TOKEN"') == 1, "a missing optional token is looked up once"


@pytest.mark.parametrize(
    ("asked", "level", "lowered"),
    [("urgent", "high", True), (5, "high", True), ("max", "high", True), (2, "low", False)],
)
async def test_priority_is_capped_at_max_priority(
    tmp_path: Path, asked: Any, level: str, lowered: bool
) -> None:
    """A priority above max_priority (names or 1-5) is lowered to it, and the result says so."""
    service = NtfyService()
    with serve_http(service) as server:
        async with built_module(tmp_path, "ntfy", CONFIG, {"NTFY_URL": server.url}) as built:
            result = await built.module.send("x", priority=asked)
    assert (result["priority"], result["priority_lowered"]) == (level, lowered)
    assert service.messages[0]["priority"] == {"high": 4, "low": 2}[level]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"message": "x" * 4097}, "4096 bytes"),
        ({"message": "é" * 2049}, "4096 bytes"),
        ({"message": "  "}, "empty"),
        ({"message": "a", "title": "t" * 1025}, "1024 bytes"),
        ({"message": "a", "title": "line\nbreak"}, "line break"),
        ({"message": "a", "title": "nul\x00"}, "control character"),
        ({"message": "a", "tags": ["a,b"]}, "','"),
        ({"message": "a", "tags": ["t" * 60] * 9}, "512 bytes"),
        ({"message": "a", "tags": ["x"] * 21}, "at most 20"),
        ({"message": "a", "click": "javascript:alert(1)"}, "http"),
        ({"message": "a", "click": "ftp://files.example/x"}, "http"),
        ({"message": "a", "click": "https://a.example/ x"}, "spaces"),
        ({"message": "a", "priority": 7}, "priority"),
    ],
)
async def test_arguments_over_ntfy_limits_are_refused_before_sending(
    tmp_path: Path, arguments: dict[str, Any], expected: str
) -> None:
    """Each argument outside ntfy's limits (or not http(s) for click) is refused and nothing
    reaches the server."""
    with serve_http(NtfyService()) as server:
        async with built_module(tmp_path, "ntfy", CONFIG, {"NTFY_URL": server.url}) as built:
            message = await failure(built.module.send(**arguments), InvalidArgument)
    assert expected in message
    assert server.requests == []


async def test_topic_template_must_name_the_agent(tmp_path: Path) -> None:
    """A topic without {agent_id}, with other characters, or too long once expanded stops
    start-up."""
    env = {"NTFY_URL": "http://127.0.0.1:9"}
    for topic in ("shared-alerts", "alerts/{agent_id}", "{agent_id}-" + "x" * 60):
        with pytest.raises(ManifestError) as caught:
            async with built_module(tmp_path, "ntfy", {"topic": topic}, env):
                pass
        assert "topic" in caught.value.message


async def test_url_userinfo_becomes_basic_auth_and_query_is_kept(tmp_path: Path) -> None:
    """user:password@ in NTFY_URL is sent as HTTP Basic (not in the URL), and a query string in
    NTFY_URL (ntfy's ?auth=) is kept on the request."""
    service = NtfyService()
    with serve_http(service) as server:
        url = server.url.replace("http://", "http://bob:s3cretpass@") + "/?auth=QUERYSECRET"
        async with built_module(tmp_path, "ntfy", CONFIG, {"NTFY_URL": url}) as built:
            await built.module.send("hi")
    (request,) = server.requests
    assert request.header("authorization") == "Basic Ym9iOnMzY3JldHBhc3M="
    assert request.query == "auth=QUERYSECRET"
    assert "bob" not in request.target


async def test_server_echoing_secrets_in_a_500_leaks_nothing(tmp_path: Path) -> None:
    """A 500 whose body repeats the token and full URL gives the agent the status only."""
    with serve_http(hostile.echo_500) as server:
        url = server.url + "/?auth=QUERYSECRET"
        env = {"NTFY_URL": url, "NTFY_TOKEN": TOKEN}
        async with built_module(tmp_path, "ntfy", CONFIG, env) as built:
            message = await failure(built.module.send("x"), BackendError)
    assert message == "ntfy: server error (HTTP 500)"
    assert_clean(message, [TOKEN, url, "QUERYSECRET", f"Bearer {TOKEN}"])


async def test_rate_limit_reports_retry_after(tmp_path: Path) -> None:
    """A 429 is reported with its Retry-After seconds."""
    with serve_http(hostile.rate_limited) as server:
        async with built_module(tmp_path, "ntfy", CONFIG, {"NTFY_URL": server.url}) as built:
            message = await failure(built.module.send("x"), BackendError)
    assert message == "ntfy: rate limited (HTTP 429); retry after 17 s"


async def test_redirects_are_not_followed(tmp_path: Path) -> None:
    """A 302 fails the call and the redirect target receives nothing (token not forwarded)."""
    with serve_http(lambda r: Reply(200, "stolen")) as elsewhere:
        target = elsewhere.url + "/steal"
        with serve_http(lambda r: hostile.redirect(target)) as server:
            env = {"NTFY_URL": server.url, "NTFY_TOKEN": TOKEN}
            async with built_module(tmp_path, "ntfy", CONFIG, env) as built:
                message = await failure(built.module.send("x"), BackendError)
    assert "302" in message
    assert elsewhere.requests == []


async def test_timeouts_oversized_answers_and_refused_connections(tmp_path: Path) -> None:
    """A stalled server times out, a huge answer is abandoned at the cap, a closed port is a
    connection error; each is a short BackendError."""
    config = {**CONFIG, "timeout_s": 0.5, "max_response_bytes": 4096}
    cases: list[tuple[Any, str]] = [
        (hostile.stall, "no answer within 0.5 s"),
        (hostile.huge, "larger than 4096 bytes"),
        (hostile.huge_declared, "larger than 4096 bytes"),
    ]
    for route, expected in cases:
        with serve_http(route) as server:
            async with built_module(tmp_path, "ntfy", config, {"NTFY_URL": server.url}) as built:
                assert expected in await failure(built.module.send("x"), BackendError)
    closed = server.url  # the last server is stopped: its port refuses connections
    async with built_module(tmp_path, "ntfy", config, {"NTFY_URL": closed}) as built:
        assert "could not connect" in await failure(built.module.send("x"), BackendError)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "127.0.0.1:80"])
async def test_non_http_urls_are_refused(tmp_path: Path, url: str) -> None:
    """NTFY_URL must be http(s); anything else fails the call naming the key, not the value."""
    async with built_module(tmp_path, "ntfy", CONFIG, {"NTFY_URL": url}) as built:
        message = await failure(built.module.send("x"), BackendError)
    assert "NTFY_URL" in message
    assert url not in message


def test_recorded_request_helpers() -> None:
    """The fake server's record decodes the path and the query separately."""
    recorded = Recorded("PUT", "/a%21b?x=1", {"Host": "h"}, b"{}")
    assert (recorded.path, recorded.query, recorded.header("host")) == ("/a!b", "x=1", "h")
