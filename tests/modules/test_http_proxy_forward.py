"""http_proxy and the shared client through an operator-named forward proxy (``config.proxy``):
targets are checked by the network policy first, and ambient proxy variables stay ignored."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from scoped_mcp.errors import ScopeViolation
from scoped_mcp.net.client import HttpConfig, make_client, request
from tests.modules.test_http_proxy import echo, lab, proxy
from tests.services.checks import failure
from tests.services.forward_proxy import forward_proxy
from tests.services.harness import built_module
from tests.services.netlab import StaticResolver, lab_server
from tests.services.smtp import make_tls_files

pytestmark = pytest.mark.anyio


async def test_a_request_goes_through_the_proxy_to_the_checked_address(tmp_path: Path) -> None:
    """With config.proxy, a GET is sent to the proxy as an absolute URI naming the address the
    policy checked, with the service's name in Host and the token attached."""
    with lab() as the_lab, forward_proxy() as fwd:
        async with proxy(tmp_path, the_lab, proxy=fwd.url) as built:
            result = await built.module.get("api", "v1/items")
    port = the_lab.allowed.port
    assert fwd.requests == [f"GET http://127.0.0.1:{port}/api/v1/items HTTP/1.1"]
    (request,) = the_lab.allowed.requests
    assert request.header("host") == f"allowed.test:{port}"
    assert (request.header("authorization") or "").startswith("Bearer ")
    assert result["status"] == 200


async def test_https_goes_through_a_connect_tunnel_checked_by_name(tmp_path: Path) -> None:
    """Over HTTPS the proxy is asked to CONNECT to the service's name (whose address our policy
    checked first), and the certificate is verified for that name inside the tunnel."""
    tls = make_tls_files(tmp_path)
    resolver = StaticResolver({"localhost": ["127.0.0.1"]})
    with lab_server(echo, tls=tls.server_context()) as server, forward_proxy() as fwd:
        service = {
            "base_url": f"https://localhost:{server.port}/",
            "allow_private_networks": True,
            "ca_file": str(tls.ca),
        }
        config = {"services": {"good": service}, "proxy": fwd.url}
        async with built_module(tmp_path, "http_proxy", config, {}) as built:
            built.module.resolver = resolver
            good = await built.module.get("good", "x")
    assert good["status"] == 200
    assert fwd.requests == [f"CONNECT localhost:{server.port} HTTP/1.1"]
    assert resolver.lookups == ["localhost"]
    assert server.server_names[0] == "localhost"


@pytest.mark.parametrize("service", ["meta", "private", "mixed"])
async def test_a_refused_target_never_reaches_the_proxy(tmp_path: Path, service: str) -> None:
    """A service whose host resolves to a metadata or (unallowed) private address is refused by
    our policy before anything is sent to the proxy."""
    with lab() as the_lab, forward_proxy() as fwd:
        async with proxy(tmp_path, the_lab, proxy=fwd.url) as built:
            await failure(built.module.get(service, ""), ScopeViolation)
    assert fwd.requests == []
    the_lab.forbidden_untouched()


async def test_ambient_proxy_variables_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY and ALL_PROXY in the environment are not used: only config.proxy is."""
    with lab() as the_lab, forward_proxy() as fwd:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, fwd.url)
        async with proxy(tmp_path, the_lab) as built:
            result = await built.module.get("api", "v1/items")
    assert fwd.requests == []
    assert result["status"] == 200


@pytest.mark.parametrize(
    "value",
    ["socks5://127.0.0.1:1080", "http://user:pw@127.0.0.1:3128", "http://127.0.0.1:3128/x", "x"],
)
def test_proxy_setting_refusals(value: str) -> None:
    """A proxy is http(s)://host:port only: no other scheme, credentials or path."""
    with pytest.raises(ValidationError):
        HttpConfig(proxy=value)


async def test_the_shared_client_of_other_modules_uses_the_proxy(tmp_path: Path) -> None:
    """A module on make_client (ntfy, grafana, ...) sends through config.proxy when it is set."""
    with lab_server(echo) as server, forward_proxy() as fwd:
        url = f"http://127.0.0.1:{server.port}/ping"
        config = HttpConfig(proxy=fwd.url)
        async with make_client(httpx.Auth(), config) as client:
            answer = await request(client, "GET", httpx.URL(url), config, service="t")
    assert answer.status == 200
    assert fwd.requests == [f"GET {url} HTTP/1.1"]
