"""SmtpModule against a real aiosmtpd server on 127.0.0.1: plain, STARTTLS and implicit TLS, with
and without AUTH; what arrives, what is refused, and that the password never shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scoped_mcp.errors import BackendError, InvalidArgument, ManifestError, ScopeViolation
from tests.services.checks import assert_clean, failure
from tests.services.harness import built_module
from tests.services.smtp import PASSWORD, USER, TlsFiles, make_tls_files, smtp_server

pytestmark = [
    pytest.mark.anyio,
    # The plain-AUTH server below exists to test that case; aiosmtpd warns about it by design.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]
BASE: dict[str, Any] = {
    "sender": "alerts@example.org",
    "sender_name": "Agent Alerts",
    "allowed_recipients": ["ops@example.org", "@oncall.example.net"],
}


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def env(port: int, host: str = "127.0.0.1", password: str = PASSWORD) -> dict[str, str]:
    return {
        "SMTP_HOST": host,
        "SMTP_PORT": str(port),
        "SMTP_USER": USER,
        "SMTP_PASSWORD": password,
    }


async def test_plain_relay_without_login(tmp_path: Path) -> None:
    """tls: none to loopback with login: false delivers: envelope, headers and body as sent."""
    config = {**BASE, "tls": "none", "login": False}
    with smtp_server() as server:
        async with built_module(tmp_path, "smtp", config, env(server.port)) as built:
            result = await built.module.send(
                ["Ops@Example.org", "pager@oncall.example.net"], "Disk full", "94% on /data\n"
            )
    (delivery,) = server.recorder.deliveries
    assert delivery.mail_from == "alerts@example.org"
    assert delivery.rcpt_tos == ["Ops@example.org", "pager@oncall.example.net"]
    assert (delivery.tls, delivery.login) == (False, None)
    message = delivery.message
    assert message["From"] == "Agent Alerts <alerts@example.org>"
    assert message["To"] == "Ops@example.org, pager@oncall.example.net"
    assert message["Subject"] == "Disk full"
    assert message["X-Scoped-MCP-Agent"] == "agent-01"
    assert message["Message-ID"] == result["message_id"]
    assert message.get_content().replace("\r\n", "\n") == "94% on /data\n"
    assert result["recipients"] == ["Ops@example.org", "pager@oncall.example.net"]


async def test_starttls_with_login_and_private_ca(tmp_path: Path, tls_files: TlsFiles) -> None:
    """STARTTLS against a server that requires it, trusting the test CA via ca_file, then AUTH:
    the message arrives over TLS as the configured user; no secret is in the result."""
    config = {**BASE, "tls": "starttls", "ca_file": str(tls_files.ca)}
    with smtp_server(tls="starttls", auth=True, files=tls_files) as server:
        async with built_module(tmp_path, "smtp", config, env(server.port)) as built:
            result = await built.module.send(["ops@example.org"], "Héllo ünïcode", "Body ✓")
    (delivery,) = server.recorder.deliveries
    assert (delivery.tls, delivery.login) == (True, USER)
    assert delivery.message["Subject"] == "Héllo ünïcode"
    assert delivery.message.get_content().strip() == "Body ✓"
    assert_clean(repr(result), [PASSWORD])


async def test_implicit_tls_with_login(tmp_path: Path, tls_files: TlsFiles) -> None:
    """tls: implicit speaks TLS from the first byte (SMTPS) and logs in."""
    config = {**BASE, "tls": "implicit", "ca_file": str(tls_files.ca)}
    with smtp_server(tls="implicit", auth=True, files=tls_files) as server:
        async with built_module(tmp_path, "smtp", config, env(server.port)) as built:
            await built.module.send(["ops@example.org"], "s", "b")
    (delivery,) = server.recorder.deliveries
    assert (delivery.tls, delivery.login) == (True, USER)


async def test_untrusted_certificate_is_refused(tmp_path: Path, tls_files: TlsFiles) -> None:
    """Without ca_file the test CA is not trusted: the call fails and nothing is delivered."""
    config = {**BASE, "tls": "starttls"}
    with smtp_server(tls="starttls", auth=True, files=tls_files) as server:
        async with built_module(tmp_path, "smtp", config, env(server.port)) as built:
            message = await failure(built.module.send(["ops@example.org"], "s", "b"))
    assert "not trusted" in message
    assert server.recorder.deliveries == []


async def test_starttls_required_but_not_offered(tmp_path: Path) -> None:
    """tls: starttls against a server without STARTTLS fails instead of sending in clear."""
    config = {**BASE, "tls": "starttls", "login": False}
    with smtp_server() as server:
        async with built_module(tmp_path, "smtp", config, env(server.port)) as built:
            message = await failure(built.module.send(["ops@example.org"], "s", "b"))
    assert "STARTTLS" in message
    assert server.recorder.deliveries == []


async def test_wrong_password_and_missing_auth(tmp_path: Path) -> None:
    """A refused login reports the SMTP code without the password; a server with no AUTH while
    login is on says to set login: false."""
    config = {**BASE, "tls": "none"}
    with smtp_server(auth=True) as server:
        wrong = "wrong-password-123456"
        async with built_module(tmp_path, "smtp", config, env(server.port, password=wrong)) as b:
            message = await failure(b.module.send(["ops@example.org"], "s", "b"), BackendError)
    assert message == "smtp: the server refused the login (535)"
    assert_clean(message, [wrong, PASSWORD])
    with smtp_server() as server:
        async with built_module(tmp_path, "smtp", config, env(server.port)) as built:
            message = await failure(built.module.send(["ops@example.org"], "s", "b"))
    assert "login: false" in message
    assert server.recorder.deliveries == []


async def test_plaintext_to_a_remote_host_is_refused_before_connecting(tmp_path: Path) -> None:
    """tls: none to a host that is not loopback is refused (0.0.0.0 would reach this machine)."""
    config = {**BASE, "tls": "none", "login": False}
    with smtp_server() as server:
        async with built_module(tmp_path, "smtp", config, env(server.port, "0.0.0.0")) as b:
            message = await failure(b.module.send(["ops@example.org"], "s", "b"), BackendError)
    assert "loopback" in message
    assert server.recorder.sessions == 0


@pytest.mark.parametrize(
    ("to", "subject", "body", "kind", "expected"),
    [
        (["ops@example.org\r\nBcc: x@evil.example"], "s", "b", InvalidArgument, "bare"),
        (["Ops <ops@example.org>"], "s", "b", InvalidArgument, "bare"),
        (["ops@example.org, x@evil.example"], "s", "b", InvalidArgument, "bare"),
        (["ops@example.org"], "hi\r\nBcc: x@evil.example", "b", InvalidArgument, "line break"),
        (["ops@example.org"], "hi\nX: y", "b", InvalidArgument, "line break"),
        (["ops@example.org"], "s" * 201, "b", InvalidArgument, "200"),
        (["ops@example.org"], "s", "b" * 1025, InvalidArgument, "1024 bytes"),
        ([], "s", "b", InvalidArgument, "at least one"),
        (["evil@example.com"], "s", "b", ScopeViolation, "allowlist"),
        (["x@sub.oncall.example.net"], "s", "b", ScopeViolation, "allowlist"),
        (["ops@example.org.evil.example"], "s", "b", ScopeViolation, "allowlist"),
        ([f"p{i}@oncall.example.net" for i in range(4)], "s", "b", InvalidArgument, "at most 3"),
    ],
)
async def test_refusals_touch_nothing(
    tmp_path: Path, to: list[str], subject: str, body: str, kind: type[Any], expected: str
) -> None:
    """Header injection, display names, unlisted recipients, too many recipients and oversized
    fields are refused before any connection is made."""
    config = {**BASE, "tls": "none", "login": False, "max_recipients": 3, "max_body_bytes": 1024}
    with smtp_server() as server:
        async with built_module(tmp_path, "smtp", config, env(server.port)) as built:
            assert expected in await failure(built.module.send(to, subject, body), kind)
    assert server.recorder.sessions == 0


async def test_duplicate_recipients_count_once(tmp_path: Path) -> None:
    """The same address twice (any case) is one recipient."""
    config = {**BASE, "tls": "none", "login": False, "max_recipients": 1}
    with smtp_server() as server:
        async with built_module(tmp_path, "smtp", config, env(server.port)) as built:
            await built.module.send(["ops@example.org", "OPS@EXAMPLE.ORG"], "s", "b")
    assert server.recorder.deliveries[0].rcpt_tos == ["ops@example.org"]


async def test_bad_port_and_closed_port(tmp_path: Path) -> None:
    """A non-numeric SMTP_PORT and a port nobody listens on fail with short errors."""
    config = {**BASE, "tls": "none", "login": False, "timeout_s": 2}
    with smtp_server() as server:
        closed = server.port
    async with built_module(tmp_path, "smtp", config, {**env(0), "SMTP_PORT": "smtp"}) as built:
        assert "SMTP_PORT" in await failure(built.module.send(["ops@example.org"], "s", "b"))
    async with built_module(tmp_path, "smtp", config, env(closed)) as built:
        message = await failure(built.module.send(["ops@example.org"], "s", "b"))
    assert "could not connect" in message


@pytest.mark.parametrize(
    "override",
    [
        {"sender": "Alerts <alerts@example.org>"},
        {"sender": "alerts@example.org\r\nBcc: x@evil.example"},
        {"sender_name": "Alerts\r\nBcc: x@evil.example"},
        {"allowed_recipients": ["not an address"]},
        {"allowed_recipients": []},
        {"tls": "opportunistic"},
    ],
)
async def test_config_is_validated_at_start_up(tmp_path: Path, override: dict[str, Any]) -> None:
    """An unsafe sender, sender name, allowlist entry or TLS mode stops start-up."""
    with pytest.raises(ManifestError):
        async with built_module(tmp_path, "smtp", {**BASE, **override}, env(25)):
            pass
