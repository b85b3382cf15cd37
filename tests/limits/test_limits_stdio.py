"""Rate limits through the real server over stdio, driven by a real MCP client.

The n+1th call in a window is refused before it costs a backend request or a credential read;
two server processes of one agent type share a Redis limit; Redis down means refusals, not free
calls, and service returns with Redis; the Redis password never appears anywhere we write.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services.fake_http import FakeHTTP, serve_http
from tests.services.redis_server import RedisServer, redis_server
from tests.services.webhooks import DISCORD_PATH, SLACK_PATH, DiscordService, SlackService
from tests.stdio.test_secret_leaks import leaks
from tests.support import base_env, run_cli

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]


def tool_calls(records: list[dict[str, Any]], tool: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") == "tool_call" and r.get("tool") == tool]


def events(records: list[dict[str, Any]], event: str, tool: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") == event and r.get("tool") == tool]


@pytest.fixture
def webhooks() -> Iterator[tuple[FakeHTTP, FakeHTTP]]:
    with serve_http(SlackService()) as slack, serve_http(DiscordService()) as discord:
        yield slack, discord


async def test_the_call_over_the_limit_costs_no_request_and_no_credential_read(
    write_manifest: Any, serve: Any, webhooks: tuple[FakeHTTP, FakeHTTP]
) -> None:
    """Overall 2/hour: two discord_send calls go out; the third call, to slack_send, is refused
    with the wait, audited as denied with no call_start, and neither Slack nor the broker (for
    SLACK_WEBHOOK_URL) is asked anything; a further discord_send reaches Discord no more."""
    slack, discord = webhooks
    manifest = write_manifest(
        {
            "agent_type": "notifier",
            "modules": {"slack_webhook": {}, "discord_webhook": {}},
            "rate_limits": {"overall": "2/hour"},
        }
    )
    env = {
        "SLACK_WEBHOOK_URL": slack.url + SLACK_PATH,
        "DISCORD_WEBHOOK_URL": discord.url + DISCORD_PATH,
    }
    async with serve(manifest, env=env) as server:
        await server.call("discord_send", {"message": "one"})
        await server.call("discord_send", {"message": "two"})
        refused = await server.error("slack_send", {"message": "three"})
        again = await server.error("discord_send", {"message": "four"})
        records = server.audit_records()
    assert "rate limited: 2 calls per hour for all tools of this agent; retry in" in refused
    assert refused.rstrip().endswith(" s")
    assert "retry in" in again
    assert slack.requests == []
    assert len(discord.requests) == 2
    fetched = [r for r in records if r.get("event") == "credential"]
    assert [r["key"] for r in fetched] == [["DISCORD_WEBHOOK_URL"]]
    (denied,) = tool_calls(records, "slack_send")
    assert denied["outcome"] == "denied"
    assert denied["error_type"] == "RateLimited"
    assert denied["error"].startswith("rate limited: 2 calls per hour")
    assert events(records, "call_start", "slack_send") == []
    outcomes = [r["outcome"] for r in tool_calls(records, "discord_send")]
    assert outcomes == ["ok", "ok", "denied"]
    assert len(events(records, "call_start", "discord_send")) == 2


def filesystem_manifest(
    write_manifest: Any, tmp_path: Path, limits: dict[str, Any], name: str = "manifest.yml"
) -> Path:
    return write_manifest(
        {
            "agent_type": "research",
            "modules": {"filesystem": {"mode": "write", "config": {"base_path": str(tmp_path)}}},
            "rate_limits": limits,
        },
        name,
    )


@pytest.fixture
def guarded_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server that requires a distinctive random password."""
    password = "rlpw" + secrets.token_urlsafe(18)
    workdir = tmp_path / "redis"
    workdir.mkdir()
    with redis_server(workdir, password=password) as server:
        yield server


async def test_two_processes_of_one_agent_type_share_a_redis_limit(
    write_manifest: Any, serve: Any, tmp_path: Path, guarded_redis: RedisServer
) -> None:
    """filesystem_list_dir 3/hour through Redis: two calls in one process and one in another use
    it up, and then both processes refuse; the password appears in no result, error, stderr,
    audit line or creds check output, in any encoding."""
    manifest = filesystem_manifest(
        write_manifest,
        tmp_path,
        {"shared": "env:RATE_REDIS_URL", "tools": {"filesystem_list_dir": "3/hour"}},
    )
    env = {"RATE_REDIS_URL": guarded_redis.url}
    seen: list[str] = []
    async with serve(manifest, agent_id="r1", env=env) as first:
        seen.append(repr(await first.call("filesystem_list_dir", {})))
        seen.append(repr(await first.call("filesystem_list_dir", {})))
        async with serve(manifest, agent_id="r2", env=env) as second:
            seen.append(repr(await second.call("filesystem_list_dir", {})))
            seen.append(await second.error("filesystem_list_dir", {}))
            seen.append(await first.error("filesystem_list_dir", {}))
            second_audit = second.audit_path.read_text()
        first_audit = first.audit_path.read_text()
        stderr = first.stderr()
    assert "rate limited: 3 calls per hour for tool filesystem_list_dir" in seen[3]
    assert "rate limited" in seen[4]
    direct = guarded_redis.client()
    try:
        assert direct.keys("*") == ["scoped-mcp:rl:{research}:tool:filesystem_list_dir"]
    finally:
        direct.close()
    check = run_cli(
        "creds",
        "check",
        "--manifest",
        str(manifest),
        env=base_env(tmp_path / "home", AGENT_ID="r1", **env),
    )
    assert "rate_limits.shared" in check.stdout
    assert "RATE_LIMIT_REDIS_URL" in check.stdout
    assert "Redis answered PING" in check.stdout
    assert check.returncode == 0, check.stdout
    text = "\n".join([*seen, first_audit, second_audit, stderr, check.stdout, check.stderr])
    for secret in (guarded_redis.password or "", guarded_redis.url):
        assert leaks(secret, "everything the servers wrote", text) == []


async def test_redis_down_refuses_every_call_and_service_returns_with_it(
    write_manifest: Any, serve: Any, tmp_path: Path, guarded_redis: RedisServer
) -> None:
    """Redis stopped: write_file is refused as "rate limiter unavailable" (audited, no file
    written, no call_start); Redis started again: the same call succeeds."""
    manifest = filesystem_manifest(
        write_manifest,
        tmp_path,
        {"shared": "env:RATE_REDIS_URL", "timeout": 2, "overall": "1000/hour"},
    )
    env = {"RATE_REDIS_URL": guarded_redis.url}
    target = tmp_path / "agents" / "r1" / "note.txt"
    async with serve(manifest, agent_id="r1", env=env) as server:
        await server.call("filesystem_write_file", {"path": "first.txt", "content": "a"})
        guarded_redis.stop()
        refusals = [
            await server.error("filesystem_write_file", {"path": "note.txt", "content": "b"})
            for _ in range(3)
        ]
        assert not target.exists()
        check = run_cli(
            "creds",
            "check",
            "--manifest",
            str(manifest),
            env=base_env(tmp_path / "home", AGENT_ID="r1", **env),
        )
        guarded_redis.start()
        await server.call("filesystem_write_file", {"path": "note.txt", "content": "c"})
        records = server.audit_records()
        stderr = server.stderr()
    assert check.returncode == 1, check.stdout
    assert "Redis did not answer PING (ConnectionError)" in check.stdout
    assert leaks(guarded_redis.password or "", "creds check", check.stdout + check.stderr) == []
    for refusal in refusals:
        assert "rate limiter unavailable" in refusal
        assert "nothing was done" in refusal
    assert target.read_text() == "c"
    calls = tool_calls(records, "filesystem_write_file")
    assert [(r["outcome"], r.get("error_type")) for r in calls] == [
        ("ok", None),
        *[("error", "LimiterUnavailable")] * 3,
        ("ok", None),
    ]
    assert len(events(records, "call_start", "filesystem_write_file")) == 2
    assert "rate limiter unavailable" in stderr
    assert (
        leaks(guarded_redis.password or "", "stderr and audit", stderr + json.dumps(records)) == []
    )


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (
            {"overall": "30/fortnight"},
            "rate_limits.overall.rate: Value error, '30/fortnight' is "
            "not a rate: write N/second, N/minute or N/hour",
        ),
        ({"tools": {"x_*": {"rate": "5/m", "burst": 0}}}, "rate_limits.tools.x_*.burst:"),
        ({"modules": {"sqlite": "5/m"}}, "modules.sqlite: no module 'sqlite' under modules:"),
        ({"overall": {"rate": "5/m", "brust": 2}}, "unknown field; allowed here: burst, rate"),
        ({"shared": "rediss://:hunter2secret@127.0.0.1:1/0"}, "put the whole URL in a secret"),
        ({"shared": "unix:///run/r.sock?password=hunter2secret"}, "put the whole URL in a secret"),
        ({"shared": "unknown-scheme:X"}, "rate_limits.shared"),
    ],
)
def test_bad_rate_limits_stop_start_up_naming_the_field(
    write_manifest: Any, tmp_path: Path, limits: dict[str, Any], expected: str
) -> None:
    """A bad value under rate_limits: stops the server (exit 2) with the field and the fix, and a
    literal URL's password is not echoed."""
    manifest = filesystem_manifest(write_manifest, tmp_path, limits)
    env = base_env(tmp_path / "home", AGENT_ID="r1", AGENT_TYPE="research")
    result = run_cli("--manifest", str(manifest), env=env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "hunter2secret" not in result.stderr + result.stdout
    assert result.stdout == ""


def test_creds_check_pings_a_literal_redis_url(write_manifest: Any, tmp_path: Path) -> None:
    """A literal URL has no key: creds check reports it as the rate_limits.shared backend, ok
    after a PING; with Redis gone, unreachable and a warning (exit 2)."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    with redis_server(workdir) as server:
        manifest = filesystem_manifest(
            write_manifest, tmp_path, {"shared": server.url, "overall": "10/s"}
        )
        env = base_env(tmp_path / "home", AGENT_ID="r1")
        up = run_cli("creds", "check", "--manifest", str(manifest), env=env)
    down = run_cli("creds", "check", "--manifest", str(manifest), "--json", env=env)
    assert up.returncode == 0, up.stdout
    assert "backend rate_limits.shared: ok  Redis answered PING" in up.stdout
    report = json.loads(down.stdout)
    assert down.returncode == 2, down.stdout
    assert report["backends"]["rate_limits.shared"]["status"] == "unreachable"
    assert any("shared rate limiter: unreachable" in w for w in report["warnings"])
