"""The Vault connection's node ring against real HTTP servers on 127.0.0.1: moving on from a node
that cannot serve, following a standby's redirect only to a listed node, and the creds check line
for a token that cannot be held to lease_ttl."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from scoped_mcp.credentials.backends.vault.check import token_warnings
from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.credentials.backends.vault.http import Connection
from scoped_mcp.errors import BackendUnavailable
from tests.services.fake_http import Recorded, Reply, serve_http
from tests.vault.conftest import free_port

ANSWER = {"data": {"value": "from-the-active-node"}}


def active(request: Recorded) -> Reply:
    return Reply(200, ANSWER)


def sealed(request: Recorded) -> Reply:
    return Reply(503, {"errors": ["Vault is sealed"]})


def spec(nodes: list[str]) -> VaultSpec:
    return VaultSpec(addr=nodes, auth="token", token_env="T", timeout=2)


def test_a_node_that_cannot_serve_is_skipped_and_the_next_one_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused connection and a sealed node are passed over; later requests stay on the node
    that served, and each move is an ops-log line."""
    caplog.set_level(logging.WARNING, logger="scoped_mcp.credentials.backends.vault")
    dead = f"http://127.0.0.1:{free_port()}"
    with serve_http(sealed) as shut, serve_http(active) as live:
        conn = Connection(spec([dead, shut.url, live.url]), [dead, shut.url, live.url])
        assert conn.request("GET", "secret/data/x", token="t") == ANSWER
        assert conn.addr == live.url.rstrip("/")
        assert conn.request("GET", "secret/data/x", token="t") == ANSWER
        assert len(shut.requests) == 1, "the second request went straight to the serving node"
    moves = [
        r for r in caplog.records if r.getMessage() == "vault node cannot serve; trying the next"
    ]
    assert [getattr(r, "node", None) for r in moves] == [dead, shut.url.rstrip("/")]


def test_a_redirect_is_followed_only_to_a_listed_node() -> None:
    """A standby's 307 to a listed node is followed there; to any other address it is refused,
    and that address never sees the request (it would carry the token)."""
    with serve_http(active) as target, serve_http(active) as stranger:

        def to_target(request: Recorded) -> Reply:
            return Reply(307, b"", headers={"Location": f"{target.url}{request.target}"})

        def to_stranger(request: Recorded) -> Reply:
            return Reply(307, b"", headers={"Location": f"{stranger.url}{request.target}"})

        with serve_http(to_target) as standby, serve_http(to_stranger) as rogue:
            conn = Connection(spec([standby.url, target.url]), [standby.url, target.url])
            assert conn.request("GET", "secret/data/x", token="t") == ANSWER
            assert conn.addr == target.url.rstrip("/")
            lone = Connection(spec([rogue.url]), [rogue.url])
            with pytest.raises(BackendUnavailable, match=r"not in credentials\.vault\.addr"):
                lone.request("GET", "secret/data/x", token="t")
        assert stranger.requests == []


def test_creds_check_names_the_role_line_for_a_token_it_cannot_shorten() -> None:
    """A non-renewable AppRole token living past lease_ttl is a warning with the fixing line."""
    approle = VaultSpec(auth="approle", role_id_env="R", secret_id_env="S", lease_ttl=120)
    facts = {"token_ttl": 3600, "token_renewable": False}
    (warning,) = token_warnings(approle, facts, role="scoped-mcp-research")
    assert "cannot hold it to lease_ttl (2m00s)" in warning
    assert warning.endswith(
        "bao write auth/approle/role/scoped-mcp-research token_ttl=120s token_type=service"
    )
    assert token_warnings(approle, {**facts, "token_renewable": True}) == []
    assert "auth/approle/role/<role> " in token_warnings(approle, facts)[0]


def test_the_ring_wraps_back_to_the_first_node() -> None:
    """When the node in use (the last one) stops serving, requests go back to the first."""
    down: set[str] = set()

    def node(name: str) -> Callable[[Recorded], Reply]:
        def route(request: Recorded) -> Reply:
            return sealed(request) if name in down else Reply(200, {"data": {"node": name}})

        return route

    with serve_http(node("a")) as first, serve_http(node("b")) as second:
        nodes = [first.url, second.url]
        conn = Connection(spec(nodes), nodes)
        down.add("a")
        assert conn.request("GET", "secret/data/x", token="t") == {"data": {"node": "b"}}
        down.clear()
        assert conn.request("GET", "secret/data/x", token="t") == {"data": {"node": "b"}}
        down.add("b")
        assert conn.request("GET", "secret/data/x", token="t") == {"data": {"node": "a"}}
        assert conn.addr == first.url.rstrip("/")
