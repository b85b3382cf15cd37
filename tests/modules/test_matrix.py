"""MatrixModule against a fake homeserver on 127.0.0.1: rooms, aliases, encryption, transactions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scoped_mcp.errors import BackendError, InvalidArgument, ManifestError, ScopeViolation
from scoped_mcp.modules.matrix import transaction_id
from tests.services import hostile
from tests.services.checks import assert_clean, failure
from tests.services.fake_http import serve_http
from tests.services.harness import built_module
from tests.services.matrix import MatrixService

pytestmark = pytest.mark.anyio
TOKEN = "syt_bWF0cml4c2VjcmV0_0123456789"
OPS, ENC, OTHER = "!ops:test", "!enc:test", "!other:test"
CONFIG: dict[str, Any] = {"rooms": [OPS, "#alerts:test", ENC]}


def homeserver() -> MatrixService:
    return MatrixService(
        token=TOKEN,
        aliases={"#alerts:test": "!alerts/x:test", "#other:test": OTHER},
        joined={OPS, "!alerts/x:test", ENC, OTHER},
        encrypted={ENC},
    )


def env(url: str) -> dict[str, str]:
    return {"MATRIX_HOMESERVER": url, "MATRIX_ACCESS_TOKEN": TOKEN}


async def test_send_to_a_room_id(tmp_path: Path) -> None:
    """A send checks the room is unencrypted, then PUTs an m.notice with the bearer token and
    returns the event id; no token or URL is in the result."""
    service = homeserver()
    with serve_http(service) as server:
        async with built_module(tmp_path, "matrix", CONFIG, env(server.url)) as built:
            result = await built.module.send(OPS, "deploy finished")
    assert result["room"] == OPS
    assert result["event_id"].startswith("$")
    assert [(r.method, r.path.split("/")[6]) for r in server.requests] == [
        ("GET", "state"),
        ("PUT", "send"),
    ]
    assert all(r.header("authorization") == f"Bearer {TOKEN}" for r in server.requests)
    assert service.events[0]["room_id"] == OPS
    assert service.events[0]["content"] == {"msgtype": "m.notice", "body": "deploy finished"}
    assert_clean(repr(result), [TOKEN, server.url])


async def test_alias_is_resolved_once_and_cached(tmp_path: Path) -> None:
    """An allowed alias is resolved through the directory API on first use only; messages land
    in the resolved room (whose id needs percent-encoding in the path)."""
    service = homeserver()
    with serve_http(service) as server:
        config = {**CONFIG, "msgtype": "m.text"}
        async with built_module(tmp_path, "matrix", config, env(server.url)) as built:
            await built.module.send("#alerts:test", "one")
            await built.module.send("#alerts:test", "two")
    lookups = [r for r in server.requests if "/directory/room/" in r.path]
    assert len(lookups) == 1
    assert lookups[0].raw_path.endswith("/%23alerts%3Atest")
    assert [e["room_id"] for e in service.events] == ["!alerts/x:test"] * 2
    assert service.events[0]["content"]["msgtype"] == "m.text"


@pytest.mark.parametrize("room", [OTHER, "#other:test", "!alerts/x:test", "!OPS:test", ""])
async def test_rooms_outside_the_allowlist_are_refused_untouched(tmp_path: Path, room: str) -> None:
    """A room not named in the allowlist (even the id behind an allowed alias) is a scope
    violation and no request is made."""
    with serve_http(homeserver()) as server:
        async with built_module(tmp_path, "matrix", CONFIG, env(server.url)) as built:
            await failure(built.module.send(room, "x"), ScopeViolation)
    assert server.requests == []


async def test_encrypted_rooms_are_refused(tmp_path: Path) -> None:
    """An end-to-end encrypted room is refused after the state check; nothing is posted."""
    service = homeserver()
    with serve_http(service) as server:
        async with built_module(tmp_path, "matrix", CONFIG, env(server.url)) as built:
            message = await failure(built.module.send(ENC, "x"), InvalidArgument)
    assert "encrypted" in message
    assert service.events == []
    assert [r.method for r in server.requests] == ["GET"]


async def test_idempotency_key_makes_a_retry_post_once(tmp_path: Path) -> None:
    """The same idempotency key for the same room reuses the transaction id, so the homeserver
    posts once and returns the same event; without a key, each call posts."""
    service = homeserver()
    with serve_http(service) as server:
        async with built_module(tmp_path, "matrix", CONFIG, env(server.url)) as built:
            first = await built.module.send(OPS, "once", idempotency_key="job-42.alert")
            retry = await built.module.send(OPS, "once", idempotency_key="job-42.alert")
            await built.module.send(OPS, "twice")
            await built.module.send(OPS, "twice")
    assert first == retry
    assert [e["content"]["body"] for e in service.events] == ["once", "twice", "twice"]
    txns = [r.path.rsplit("/", 1)[1] for r in server.requests if r.method == "PUT"]
    assert txns[0] == txns[1] != txns[2] != txns[3]


def test_transaction_ids_are_deterministic_per_agent_room_and_key() -> None:
    """A keyed transaction id depends on agent, room and key only; an unkeyed one is random."""
    base = transaction_id("a1", OPS, "k")
    assert base == transaction_id("a1", OPS, "k")
    assert base not in {transaction_id("a2", OPS, "k"), transaction_id("a1", ENC, "k")}
    assert transaction_id("a1", OPS, None) != transaction_id("a1", OPS, None)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"message": "x" * 16_385}, "16384 bytes"),
        ({"message": ""}, "empty"),
        ({"message": "x", "idempotency_key": "has space"}, "idempotency_key"),
        ({"message": "x", "idempotency_key": "k" * 129}, "idempotency_key"),
    ],
)
async def test_bad_arguments_are_refused_untouched(
    tmp_path: Path, arguments: dict[str, Any], expected: str
) -> None:
    """Oversized or empty messages and malformed idempotency keys are refused before any
    request."""
    with serve_http(homeserver()) as server:
        async with built_module(tmp_path, "matrix", CONFIG, env(server.url)) as built:
            assert expected in await failure(built.module.send(OPS, **arguments), InvalidArgument)
    assert server.requests == []


async def test_refused_token_and_missing_membership(tmp_path: Path) -> None:
    """A refused token and a room the bot is not in give the status and the spec errcode."""
    service = homeserver()
    with serve_http(service) as server:
        bad = {"MATRIX_HOMESERVER": server.url, "MATRIX_ACCESS_TOKEN": "syt_wrong_token_value"}
        async with built_module(tmp_path, "matrix", CONFIG, bad) as built:
            message = await failure(built.module.send(OPS, "x"), BackendError)
        assert message == "matrix: the credential was refused (HTTP 401) (M_UNKNOWN_TOKEN)"
        assert "syt_wrong" not in message
        service.joined.discard(OPS)
        async with built_module(tmp_path, "matrix", CONFIG, env(server.url)) as built:
            message = await failure(built.module.send(OPS, "x"), BackendError)
    assert message == "matrix: the credential is not allowed to do this (HTTP 403) (M_FORBIDDEN)"


async def test_echoing_server_error_leaks_nothing(tmp_path: Path) -> None:
    """A 500 whose errcode and error fields repeat the token and URL is reported as a bare 500."""
    with serve_http(hostile.echo_500) as server:
        async with built_module(tmp_path, "matrix", CONFIG, env(server.url)) as built:
            message = await failure(built.module.send(OPS, "x"), BackendError)
    assert message == "matrix: server error (HTTP 500)"
    assert_clean(message, [TOKEN, server.url])


async def test_room_names_are_validated_at_start_up(tmp_path: Path) -> None:
    """A room that is neither !id:server nor #alias:server, or an empty list, stops start-up."""
    for rooms in (["ops"], ["!nocolon"], []):
        with pytest.raises(ManifestError):
            async with built_module(tmp_path, "matrix", {"rooms": rooms}, env("http://x")):
                pass
