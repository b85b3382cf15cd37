"""The notification modules through the real server over stdio: registration, end-to-end sends
to fake services on 127.0.0.1, and no secret in any result, error, stderr or audit line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.services import hostile
from tests.services.checks import assert_clean
from tests.services.fake_http import FakeHTTP, serve_http
from tests.services.matrix import MatrixService
from tests.services.ntfy import NtfyService
from tests.services.smtp import PASSWORD, USER, smtp_server
from tests.services.webhooks import DISCORD_PATH, SLACK_PATH, DiscordService, SlackService
from tests.support import base_env, run_cli

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.stdio,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]
NTFY_TOKEN = "tk_stdiontfysecret0123456789"
MATRIX_TOKEN = "syt_stdiomatrixsecret_abcdef0123"
TOOLS = ["discord_send", "matrix_send", "ntfy_send", "slack_send", "smtp_send"]


def manifest_data() -> dict[str, Any]:
    return {
        "agent_type": "notifier",
        "modules": {
            "ntfy": {"config": {"topic": "alerts-{agent_id}", "max_priority": "high"}},
            "smtp": {
                "config": {
                    "sender": "alerts@example.org",
                    "allowed_recipients": ["@example.org"],
                    "tls": "none",
                }
            },
            "matrix": {"config": {"rooms": ["!ops:test"]}},
            "slack_webhook": {},
            "discord_webhook": {},
        },
    }


@contextmanager
def services(routes: dict[str, Any], *, smtp_auth: bool) -> Iterator[dict[str, Any]]:
    """Start one fake HTTP server per route plus an SMTP server; yield them by name."""
    with ExitStack() as stack:
        running: dict[str, Any] = {
            name: stack.enter_context(serve_http(route)) for name, route in routes.items()
        }
        running["smtp"] = stack.enter_context(smtp_server(auth=smtp_auth))
        yield running


def credentials(running: dict[str, Any], smtp_password: str = PASSWORD) -> dict[str, str]:
    http: dict[str, FakeHTTP] = {k: v for k, v in running.items() if k != "smtp"}
    return {
        "NTFY_URL": http["ntfy"].url + "/?auth=STDIOQUERYSECRET",
        "NTFY_TOKEN": NTFY_TOKEN,
        "MATRIX_HOMESERVER": http["matrix"].url,
        "MATRIX_ACCESS_TOKEN": MATRIX_TOKEN,
        "SLACK_WEBHOOK_URL": http["slack"].url + SLACK_PATH,
        "DISCORD_WEBHOOK_URL": http["discord"].url + DISCORD_PATH,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(running["smtp"].port),
        "SMTP_USER": USER,
        "SMTP_PASSWORD": smtp_password,
    }


def secrets_of(env: dict[str, str]) -> list[str]:
    keys = ("NTFY_URL", "NTFY_TOKEN", "MATRIX_ACCESS_TOKEN", "SLACK_WEBHOOK_URL")
    return [
        *(env[k] for k in keys),
        env["DISCORD_WEBHOOK_URL"],
        env["SMTP_PASSWORD"],
        "STDIOQUERYSECRET",
        SLACK_PATH.rsplit("/", 1)[1],
        DISCORD_PATH.rsplit("/", 1)[1],
    ]


async def test_tools_registered_and_every_module_delivers(
    write_manifest: Any, serve: Any, tmp_path: Path
) -> None:
    """All five modules register exactly their send tool (no mode needed), and one call each
    reaches its fake service with the right topic, room, recipients and payload."""
    ntfy, slack, discord = NtfyService(token=NTFY_TOKEN), SlackService(), DiscordService()
    matrix = MatrixService(token=MATRIX_TOKEN, joined={"!ops:test"})
    routes = {"ntfy": ntfy, "matrix": matrix, "slack": slack, "discord": discord}
    with services(routes, smtp_auth=True) as running:
        env = credentials(running)
        async with serve(write_manifest(manifest_data()), agent_id="ops-7", env=env) as server:
            assert await server.tool_names() == TOOLS
            schema = {t.name: t.input_schema for t in await server.client.list_tools()}
            assert "topic" not in schema["ntfy_send"]["properties"]
            results = [
                await server.call("ntfy_send", {"message": "m1", "priority": "urgent"}),
                await server.call("slack_send", {"message": "m2"}),
                await server.call("discord_send", {"message": "m3"}),
                await server.call("matrix_send", {"room": "!ops:test", "message": "m4"}),
                await server.call(
                    "smtp_send", {"to": ["ops@example.org"], "subject": "m5", "body": "b"}
                ),
            ]
            denied = await server.error(
                "smtp_send", {"to": ["x@evil.example"], "subject": "s", "body": "b"}
            )
            records = server.audit_records()
            stderr = server.stderr()
    assert "allowlist" in denied
    assert ntfy.messages[0]["topic"] == "alerts-ops-7"
    assert ntfy.messages[0]["priority"] == 4
    assert results[0]["priority_lowered"] is True
    assert slack.posts == [{"text": "m2"}]
    assert discord.posts[0]["content"] == "m3"
    assert matrix.events[0]["room_id"] == "!ops:test"
    (delivery,) = running["smtp"].recorder.deliveries
    assert (delivery.rcpt_tos, delivery.login) == (["ops@example.org"], USER)
    calls = [(r["tool"], r["outcome"]) for r in records if r.get("event") == "tool_call"]
    assert calls == [(name, "ok") for name in ("ntfy_send", "slack_send", "discord_send")] + [
        ("matrix_send", "ok"),
        ("smtp_send", "ok"),
        ("smtp_send", "denied"),
    ]
    everything = repr(results) + stderr + server.audit_path.read_text()
    assert_clean(everything, secrets_of(env))


async def test_failing_backends_leak_no_secret(
    write_manifest: Any, serve: Any, tmp_path: Path
) -> None:
    """Backends that echo the token and URL in 500s, rate-limit, or refuse the SMTP password give
    the agent short errors (status, Retry-After) and leave no secret in errors, stderr or audit."""
    routes = {
        "ntfy": hostile.echo_500,
        "matrix": hostile.echo_500,
        "slack": hostile.echo_401,
        "discord": hostile.rate_limited,
    }
    with services(routes, smtp_auth=True) as running:
        env = credentials(running, smtp_password="stdio-wrong-password-42")
        async with serve(write_manifest(manifest_data()), env=env) as server:
            errors = {
                "ntfy": await server.error("ntfy_send", {"message": "x"}),
                "slack": await server.error("slack_send", {"message": "x"}),
                "discord": await server.error("discord_send", {"message": "x"}),
                "matrix": await server.error("matrix_send", {"room": "!ops:test", "message": "x"}),
                "smtp": await server.error(
                    "smtp_send", {"to": ["ops@example.org"], "subject": "s", "body": "b"}
                ),
            }
            audit = server.audit_path.read_text()
            stderr = server.stderr()
    assert "HTTP 500" in errors["ntfy"]
    assert "HTTP 401" in errors["slack"]
    assert "retry after 17 s" in errors["discord"]
    assert "HTTP 500" in errors["matrix"]
    assert "refused the login (535)" in errors["smtp"]
    assert running["smtp"].recorder.deliveries == []
    assert_clean(repr(errors) + stderr + audit, secrets_of(env))
    assert '"outcome": "error"' in audit or '"outcome":"error"' in audit


def test_mode_read_on_a_write_only_module_is_refused(write_manifest: Any, tmp_path: Path) -> None:
    """``mode: read`` on a notification module stops start-up with a message naming the field."""
    data = {"agent_type": "notifier", "modules": {"slack_webhook": {"mode": "read"}}}
    env = base_env(
        tmp_path / "home", AGENT_ID="a1", AGENT_TYPE="notifier", SLACK_WEBHOOK_URL="http://x"
    )
    result = run_cli("--manifest", str(write_manifest(data)), env=env, timeout=30)
    assert result.returncode != 0
    assert "modules.slack_webhook.mode" in result.stderr
    assert "only write tools" in result.stderr
    assert result.stdout == ""


def test_a_manifest_without_these_modules_imports_neither_httpx_nor_aiosmtplib(
    write_manifest: Any, tmp_path: Path
) -> None:
    """Building a server whose manifest has no HTTP or SMTP module loads neither library."""
    path = write_manifest({"agent_type": "research", "modules": {}})
    code = (
        "import sys\n"
        "from scoped_mcp import manifest, server\n"
        "from scoped_mcp.identity import AgentContext\n"
        f"m = manifest.load({str(path)!r})\n"
        f"m = m.model_copy(update={{'audit': m.audit.model_copy(update={{'path': "
        f"__import__('pathlib').Path({str(tmp_path / 'a.jsonl')!r})}})}})\n"
        "server.build(m, AgentContext('a1', 'research'), {})\n"
        "print(sorted(n for n in ('httpx', 'aiosmtplib') if n in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
