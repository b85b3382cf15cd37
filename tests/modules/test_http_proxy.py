"""HttpProxyModule against real servers on loopback: a table of SSRF attacks, none of which may
reach the forbidden servers, plus headers, bodies, redirects, credentials and configuration."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scoped_mcp.errors import (
    BackendError,
    ConfigError,
    CredentialError,
    InvalidArgument,
    ScopeViolation,
)
from tests.services.checks import assert_clean, failure
from tests.services.fake_http import Recorded, Reply
from tests.services.harness import Built, built_module
from tests.services.netlab import LabServer, NetWatch, StaticResolver, lab_server, watch
from tests.services.smtp import make_tls_files

pytestmark = pytest.mark.anyio
TOKEN = "tok_proxysecret_0123456789abcdef"


def echo(request: Recorded) -> Reply:
    """Answers with what arrived, plus headers that must never reach the agent."""
    return Reply(
        200,
        {"method": request.method, "target": request.target, "body": request.body.decode()},
        headers={
            "Set-Cookie": "session=abc",
            "WWW-Authenticate": "Bearer realm=x",
            "Proxy-Authenticate": "Basic",
            "X-Internal": "secret",
            "ETag": '"v1"',
        },
    )


def forbidden(request: Recorded) -> Reply:
    return Reply(200, {"reached": "forbidden"})


@dataclass
class Lab:
    """The allowed server, two forbidden ones (another port; another address, same port)."""

    allowed: LabServer
    other_port: LabServer
    other_host: LabServer
    net: NetWatch

    def forbidden_untouched(self) -> None:
        assert not self.other_port.touched, self.other_port.requests
        assert not self.other_host.touched, self.other_host.requests


@contextmanager
def lab() -> Iterator[Lab]:
    with ExitStack() as stack:
        allowed = stack.enter_context(lab_server(echo))
        other_port = stack.enter_context(lab_server(forbidden))
        other_host = stack.enter_context(lab_server(forbidden, "127.0.0.2", allowed.port))
        net = stack.enter_context(watch())
        yield Lab(allowed, other_port, other_host, net)


def config(port: int, **extra: Any) -> dict[str, Any]:
    api = {
        "base_url": f"http://allowed.test:{port}/api",
        "paths": ["/v1"],
        "methods": ["GET", "POST", "PUT", "DELETE"],
        "auth": {"key": "API_TOKEN"},
        "allow_private_networks": True,
        "max_request_bytes": 1024,
    }
    return {
        "services": {
            "api": api,
            "readonly": {
                "base_url": f"http://allowed.test:{port}/",
                "allow_private_networks": True,
            },
            "strict": {"base_url": f"http://strict.test:{port}/"},
            "meta": {"base_url": f"http://meta.test:{port}/", "allow_private_networks": True},
            "mixed": {"base_url": f"http://mixed.test:{port}/", "allow_private_networks": True},
            "private": {"base_url": f"http://private.test:{port}/"},
            "embedded": {
                "base_url": f"http://embedded.test:{port}/",
                "allow_private_networks": True,
            },
        },
        "timeout_s": 3,
        "max_response_bytes": 4096,
        "max_redirects": 2,
        **extra,
    }


RESOLVER_TABLE = {
    "allowed.test": ["127.0.0.1"],
    "strict.test": ["127.0.0.1"],
    "meta.test": ["169.254.169.254"],
    "mixed.test": ["127.0.0.1", "169.254.169.254"],
    "private.test": ["10.20.30.40"],
    "embedded.test": ["::ffff:169.254.169.254"],
}


@asynccontextmanager
async def proxy(
    tmp_path: Path, the_lab: Lab, resolver: StaticResolver | None = None, **extra: Any
) -> AsyncIterator[Built]:
    env = {"API_TOKEN": TOKEN}
    async with built_module(
        tmp_path, "http_proxy", config(the_lab.allowed.port, **extra), env
    ) as b:
        b.module.resolver = resolver or StaticResolver(dict(RESOLVER_TABLE))
        yield b


async def test_get_reaches_the_allowed_service_with_token_and_name(tmp_path: Path) -> None:
    """A GET lands on the allowed server under the base path, with the broker's token, the name
    (not the IP) in Host, and only safe response headers come back."""
    with lab() as the_lab:
        async with proxy(tmp_path, the_lab) as built:
            result = await built.module.get("api", "v1/items", params={"q": "a b", "n": 2})
    (request,) = the_lab.allowed.requests
    assert request.target == "/api/v1/items?q=a%20b&n=2"
    assert request.header("authorization") == f"Bearer {TOKEN}"
    assert request.header("host") == f"allowed.test:{the_lab.allowed.port}"
    assert request.header("accept-encoding") == "identity"
    assert result["status"] == 200
    assert result["json"]["target"] == "/api/v1/items?q=a%20b&n=2"
    assert set(result["headers"]) == {"content-type", "etag", "date"}
    assert_clean(repr(result), [TOKEN])
    the_lab.forbidden_untouched()
    assert the_lab.net.lookups == [], "no name went to the system resolver"


PATH_ATTACKS = [
    "http://127.0.0.1:{forbidden}/x",
    "//127.0.0.1:{forbidden}/x",
    "http://allowed.test@127.0.0.1:{forbidden}/",
    "HTTP://127.0.0.1:{forbidden}/",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "../x",
    "v1/../../x",
    "v1/../admin",
    "v1/%2e%2e/admin",
    "v1/%2E%2E/admin",
    "v1/.%2e/admin",
    "v1/%2e/admin",
    "v1/%252e%252e/admin",
    "v1/..%2fadmin",
    "v1/%2f%2f127.0.0.1:{forbidden}",
    "v1/..%5cadmin",
    "v1\\..\\admin",
    "v1/..;/admin",
    "v1/%2e%2e;x/admin",
    "v1/\uff0e\uff0e/admin",
    "v1/%ef%bc%8e%ef%bc%8e/admin",
    "v1/%c0%ae%c0%ae/admin",
    "v1/%ff",
    "v1/%zz",
    "v1/50%",
    "v1//x",
    "v1/x%00y",
    "v1/x\r\nHost: evil.test",
    "v1/x%0d%0aHost:%20evil",
    "v1/x?admin=1",
    "v1/x#frag",
    "v1/x\u202e",
    "v2/x",
    "v10",
    "V1/x",
    "admin",
    "",
    "/",
]


@pytest.mark.parametrize("attack", PATH_ATTACKS)
async def test_path_attacks_are_refused_before_any_connection(tmp_path: Path, attack: str) -> None:
    """Each URL, authority, traversal or encoding trick in the path is refused, and no server
    (allowed or forbidden) sees a connection."""
    with lab() as the_lab:
        path = attack.format(forbidden=the_lab.other_port.port)
        async with proxy(tmp_path, the_lab) as built:
            with pytest.raises((ScopeViolation, InvalidArgument)):
                await built.module.get("api", path)
    assert not the_lab.allowed.touched
    the_lab.forbidden_untouched()


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("v1", "/api/v1"),
        ("/v1/items/", "/api/v1/items/"),
        ("v1/@127.0.0.1:9/x", "/api/v1/@127.0.0.1:9/x"),
        ("v1/a%20b", "/api/v1/a%20b"),
        ("v1/caf%C3%A9", "/api/v1/caf%C3%A9"),
        ("v1/café", "/api/v1/caf%C3%A9"),
        ("v1/.well", "/api/v1/.well"),
    ],
)
async def test_odd_but_safe_paths_stay_on_the_service(
    tmp_path: Path, path: str, target: str
) -> None:
    """Paths that merely look odd are re-encoded canonically and still reach only the service."""
    with lab() as the_lab:
        async with proxy(tmp_path, the_lab) as built:
            await built.module.get("api", path)
    assert [r.target for r in the_lab.allowed.requests] == [target]
    the_lab.forbidden_untouched()


@pytest.mark.parametrize(
    ("service", "reason"),
    [
        ("strict", "loopback"),
        ("meta", "metadata"),
        ("mixed", "metadata"),
        ("private", "private"),
        ("embedded", "metadata"),
    ],
)
async def test_names_resolving_to_refused_addresses_never_connect(
    tmp_path: Path, service: str, reason: str
) -> None:
    """A name that resolves to loopback (without the flag), private, metadata or an IPv6-mapped
    metadata address is refused before any socket connects."""
    with lab() as the_lab:
        async with proxy(tmp_path, the_lab) as built:
            message = await failure(built.module.get(service, "x"), ScopeViolation)
        refused_hosts = {"169.254.169.254", "10.20.30.40", "::ffff:169.254.169.254"}
        assert not (the_lab.net.connected_hosts() & refused_hosts)
    assert reason in message
    assert not the_lab.allowed.touched
    the_lab.forbidden_untouched()


async def test_dns_rebinding_cannot_move_the_connection(tmp_path: Path) -> None:
    """The name is resolved once per request and the connection goes to that checked address:
    a resolver that later answers with the metadata address gets refused, never connected."""
    resolver = StaticResolver(dict(RESOLVER_TABLE), later={"allowed.test": ["169.254.169.254"]})
    with lab() as the_lab:
        async with proxy(tmp_path, the_lab, resolver) as built:
            first = await built.module.get("api", "v1/a")
            await failure(built.module.get("api", "v1/b"), ScopeViolation)
        assert "169.254.169.254" not in the_lab.net.connected_hosts()
        assert the_lab.net.lookups == []
    assert first["status"] == 200
    assert resolver.lookups == ["allowed.test", "allowed.test"]
    assert [r.target for r in the_lab.allowed.requests] == ["/api/v1/a"]
    the_lab.forbidden_untouched()


REDIRECT_ATTACKS = [
    "http://127.0.0.1:{forbidden}/api/v1/x",
    "http://127.0.0.2:{port}/api/v1/x",
    "//127.0.0.1:{forbidden}/api/v1/x",
    "http://allowed.test@127.0.0.1:{forbidden}/api/v1/x",
    "http://allowed.test:x@127.0.0.2:{port}/api/v1/x",
    "http://2130706433:{forbidden}/api/v1/x",
    "http://0x7f.1:{forbidden}/api/v1/x",
    "http://[::ffff:127.0.0.1]:{forbidden}/api/v1/x",
    "http://allowed.test:{forbidden}/api/v1/x",
    "https://allowed.test:{port}/api/v1/x",
    "http://ALLOWED.test.:{port}/api/v1/x",
    "/api/v2/x",
    "/admin",
    "../../admin",
    "/api/v1/%2e%2e/admin",
    "/api/v1/..%2f..%2fadmin",
    "file:///etc/passwd",
    "http://169.254.169.254/latest/meta-data/",
]


@pytest.mark.parametrize("location", REDIRECT_ATTACKS)
async def test_redirects_off_the_service_are_refused(tmp_path: Path, location: str) -> None:
    """A redirect to another host, port, scheme, address form or a path outside the allowed
    prefixes is refused; the forbidden servers receive nothing."""
    with lab() as the_lab:
        target = location.format(forbidden=the_lab.other_port.port, port=the_lab.allowed.port)
        the_lab.allowed.route = lambda request: Reply(302, b"", {"Location": target})
        async with proxy(tmp_path, the_lab) as built:
            message = await failure(built.module.get("api", "v1/start"), ScopeViolation)
        assert "169.254.169.254" not in the_lab.net.connected_hosts()
    assert "redirect" in message
    assert len(the_lab.allowed.requests) == 1
    the_lab.forbidden_untouched()


async def test_redirects_within_the_service_are_followed_and_bounded(tmp_path: Path) -> None:
    """A redirect to an allowed path of the same service is followed (303 turns POST into GET),
    and a redirect loop stops after max_redirects."""

    def route(request: Recorded) -> Reply:
        if request.path == "/api/v1/start":
            return Reply(303, b"", {"Location": "/api/v1/done?x=1"})
        if request.path == "/api/v1/loop":
            return Reply(307, b"", {"Location": "loop"})
        return echo(request)

    with lab() as the_lab:
        the_lab.allowed.route = route
        async with proxy(tmp_path, the_lab) as built:
            done = await built.module.post("api", "v1/start", json_body={"a": 1})
            message = await failure(built.module.get("api", "v1/loop"), BackendError)
    assert done["json"]["method"] == "GET"
    assert done["json"]["target"] == "/api/v1/done?x=1"
    assert [r.header("authorization") for r in the_lab.allowed.requests[:2]] == [
        f"Bearer {TOKEN}"
    ] * 2
    assert "more than 2 redirects" in message
    the_lab.forbidden_untouched()


@pytest.mark.parametrize(
    "header",
    [
        "Authorization", "Proxy-Authorization", "Cookie", "Host", "X-Forwarded-For",
        "X-Forwarded-Host", "Forwarded", "Transfer-Encoding", "Content-Length", "Connection",
        "Upgrade", "Accept-Encoding", "X-Anything", "Bad Header",
    ],
)  # fmt: skip
async def test_agent_headers_outside_the_allowlist_are_refused(tmp_path: Path, header: str) -> None:
    """Credential, routing, framing and unknown headers cannot be set by the agent."""
    with lab() as the_lab:
        async with proxy(tmp_path, the_lab) as built:
            await failure(built.module.get("api", "v1/x", headers={header: "v"}), ScopeViolation)
    assert not the_lab.allowed.touched


async def test_allowed_agent_headers_pass_and_values_are_checked(tmp_path: Path) -> None:
    """Accept passes; a header value with CR/LF or non-ASCII is refused."""
    with lab() as the_lab:
        async with proxy(tmp_path, the_lab) as built:
            await built.module.get("api", "v1/x", headers={"Accept": "application/json"})
            for bad in ("a\r\nX-Evil: 1", "caf\u00e9", "x" * 2000):
                await failure(built.module.get("api", "v1/x", headers={"Accept": bad}))
    (request,) = the_lab.allowed.requests
    assert request.header("accept") == "application/json"


async def test_bodies_are_capped_and_methods_enforced(tmp_path: Path) -> None:
    """A body over max_request_bytes, body plus json_body, a method the service does not allow,
    and an unknown service are all refused before sending."""
    with lab() as the_lab:
        async with proxy(tmp_path, the_lab) as built:
            await failure(built.module.post("api", "v1/x", body="x" * 1025), InvalidArgument)
            await failure(built.module.post("api", "v1/x", body="a", json_body={}))
            await failure(built.module.post("api", "v1/x", body="\ud800"), InvalidArgument)
            await failure(
                built.module.post("api", "v1/x", json_body={"n": float("nan")}), InvalidArgument
            )
            await failure(built.module.post("readonly", "x", body="a"), ScopeViolation)
            await failure(built.module.get("nope", "x"), ScopeViolation)
            sent = await built.module.put("api", "v1/x", body="hello")
            gone = await built.module.delete("api", "v1/x")
    assert sent["json"] == {"method": "PUT", "target": "/api/v1/x", "body": "hello"}
    assert gone["json"]["method"] == "DELETE"
    assert [r.method for r in the_lab.allowed.requests] == ["PUT", "DELETE"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(200, b"x" * 5000), "larger than 4096"),
        (Reply(200, b"x", {"Content-Encoding": "gzip"}), "compressed"),
    ],
)
async def test_oversized_and_compressed_responses_fail(
    tmp_path: Path, reply: Reply, expected: str
) -> None:
    """A response over max_response_bytes, or compressed despite identity, fails the call."""
    with lab() as the_lab:
        the_lab.allowed.route = lambda request: reply
        async with proxy(tmp_path, the_lab) as built:
            message = await failure(built.module.get("api", "v1/x"), BackendError)
    assert expected in message


async def test_binary_and_error_bodies_are_returned_as_data(tmp_path: Path) -> None:
    """A 404 comes back as a status with its body; binary content comes back as base64."""
    with lab() as the_lab:
        the_lab.allowed.route = lambda r: Reply(404, "no such item")
        async with proxy(tmp_path, the_lab) as built:
            missing = await built.module.get("api", "v1/x")
            the_lab.allowed.route = lambda r: Reply(200, b"\xff\xfe")
            binary = await built.module.get("api", "v1/x")
    assert (missing["status"], missing["body"]) == (404, "no such item")
    assert binary["body_base64"] == "//4="


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ({"base_url": "http://2130706433/"}, "legacy form"),
        ({"base_url": "http://0x7f000001/"}, "legacy form"),
        ({"base_url": "http://0177.0.0.1/", "allow_private_networks": True}, "legacy form"),
        ({"base_url": "http://127.1/", "allow_private_networks": True}, "legacy form"),
        ({"base_url": "http://user:pw@example.test/"}, "credentials"),
        ({"base_url": "http://example.test/?a=1"}, "query"),
        ({"base_url": "http://example.test/#f"}, "fragment"),
        ({"base_url": "ftp://example.test/"}, "http"),
        ({"base_url": "http://127.0.0.1/"}, "allow_private_networks"),
        ({"base_url": "http://10.0.0.1/"}, "allow_private_networks"),
        ({"base_url": "http://169.254.169.254/", "allow_private_networks": True}, "metadata"),
        ({"base_url": "http://[::ffff:a9fe:a9fe]/", "allow_private_networks": True}, "metadata"),
        ({"base_url": "http://exa mple.test/"}, "DNS name"),
        ({"base_url": "http://example.test/a/../b"}, "'..'"),
        ({"base_url": "http://example.test/", "paths": ["/a/%2e%2e"]}, "'..'"),
        ({"base_url": "http://example.test/", "request_headers": ["Authorization"]}, "never"),
        ({"base_url": "http://example.test/", "response_headers": ["Set-Cookie"]}, "never"),
        ({"base_url": "http://example.test/", "auth": {"key": "K", "header": "Host"}}, "Host"),
        ({"base_url": "http://example.test/", "auth": {"key": "1BAD"}}, "letters"),
    ],
)
async def test_unsafe_service_configuration_stops_start_up(
    tmp_path: Path, service: dict[str, Any], expected: str
) -> None:
    """Base URLs with credentials, queries, legacy IP forms or refused addresses, and header
    settings that would expose credentials, are configuration errors."""
    with pytest.raises(ConfigError) as caught:
        async with built_module(tmp_path, "http_proxy", {"services": {"s": service}}, {}):
            pass
    assert expected in caught.value.message


async def test_service_credential_keys_are_required_at_start_up(tmp_path: Path) -> None:
    """A service naming auth.key makes that key required: missing, the server does not start."""
    service = {"base_url": "http://example.test/", "auth": {"key": "SVC_TOKEN"}}
    with pytest.raises(CredentialError) as caught:
        async with built_module(tmp_path, "http_proxy", {"services": {"s": service}}, {}):
            pass
    assert "SVC_TOKEN" in caught.value.diagnostics()


async def test_custom_auth_header_and_scheme(tmp_path: Path) -> None:
    """auth.header and auth.scheme shape the injected header; null scheme sends the bare value."""
    with lab() as the_lab:
        port = the_lab.allowed.port
        services = {
            "a": {
                "base_url": f"http://127.0.0.1:{port}",
                "allow_private_networks": True,
                "auth": {"key": "K1", "header": "X-Api-Key", "scheme": None},
            },
            "b": {
                "base_url": f"http://127.0.0.1:{port}",
                "allow_private_networks": True,
                "auth": {"key": "K2", "scheme": "Token"},
            },
        }
        env = {"K1": "key-one-secret", "K2": "key-two-secret"}
        async with built_module(tmp_path, "http_proxy", {"services": services}, env) as built:
            await built.module.get("a", "x")
            await built.module.get("b", "y")
    first, second = the_lab.allowed.requests
    assert (first.header("x-api-key"), first.header("authorization")) == ("key-one-secret", None)
    assert second.header("authorization") == "Token key-two-secret"
    assert second.header("host") == f"127.0.0.1:{port}"


async def test_https_verifies_the_service_name_on_the_pinned_address(tmp_path: Path) -> None:
    """Over HTTPS the connection goes to the checked address while SNI and the certificate check
    use the service's name: a name the certificate does not cover fails, though the IP matches."""
    tls = make_tls_files(tmp_path)
    resolver = StaticResolver({"localhost": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    with lab_server(echo, tls=tls.server_context()) as server:
        services = {
            name: {
                "base_url": f"https://{host}:{server.port}/",
                "allow_private_networks": True,
                "ca_file": str(tls.ca),
            }
            for name, host in (("good", "localhost"), ("wrong", "other.test"))
        }
        async with built_module(tmp_path, "http_proxy", {"services": services}, {}) as built:
            built.module.resolver = resolver
            good = await built.module.get("good", "x")
            message = await failure(built.module.get("wrong", "x"), BackendError)
    assert good["status"] == 200
    assert server.server_names[0] == "localhost"
    assert [r.header("host") for r in server.requests] == [f"localhost:{server.port}"]
    assert "connection failed" in message or "could not connect" in message


async def test_unreadable_ca_file_stops_start_up(tmp_path: Path) -> None:
    """A ca_file that cannot be loaded is a configuration error naming the service."""
    service = {"base_url": "https://example.test/", "ca_file": str(tmp_path / "missing.pem")}
    with pytest.raises(ConfigError) as caught:
        async with built_module(tmp_path, "http_proxy", {"services": {"s": service}}, {}):
            pass
    assert "services.s.ca_file" in caught.value.message
