"""Raw JSON-RPC over a real server's stdio: every request gets an answer, even a malformed one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scoped_mcp.testing.harness import write_manifest
from tests.contract_support import INITIALIZED, RawServer, call, child_env, initialize

pytestmark = pytest.mark.stdio

INVALID_REQUEST = -32600
PARSE_ERROR = -32700


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RawServer, Path]]:
    """One server (probe module, write mode) for the whole file, after the handshake."""
    top = tmp_path_factory.mktemp("protocol")
    probe = {"type": "custom_modules.probe:ProbeModule", "mode": "write"}
    manifest = write_manifest(top / "m.yml", {"agent_type": "proto", "modules": {"probe": probe}})
    env = child_env(top / "home", AGENT_ID="proto-01", AGENT_TYPE="proto")
    server = RawServer.start(["--manifest", str(manifest)], env=env, cwd=top)
    try:
        # A loaded machine can take a while to start the server.
        server.ask(initialize(), timeout=60)
        server.send(INITIALIZED)
        yield server, top / "home" / "state" / "scoped-mcp" / "audit" / "proto-01.jsonl"
        assert server.close() == 0
    finally:
        server.kill()


def _send_line(server: RawServer, line: str) -> None:
    assert server.process.stdin is not None
    server.process.stdin.write(line + "\n")
    server.process.stdin.flush()


def _next_reply(server: RawServer) -> dict[str, Any]:
    reply = server.read(timeout=10)
    assert reply is not None, "stdout ended"
    return reply


def _still_serving(server: RawServer) -> None:
    reply = server.ask(call(9000, "probe_echo", text="alive"))
    assert reply["result"]["structuredContent"] == {"result": "alive"}


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "id": 21, "method": "ping", "params": "a string"},
        {"jsonrpc": "2.0", "id": 22, "method": "ping", "params": [1, 2]},
        {"jsonrpc": "2.0", "id": 23, "method": 5},
        {"id": 24, "method": "ping"},
        {"jsonrpc": "1.0", "id": 25, "method": "ping"},
        {"jsonrpc": "2.0", "id": 26},
    ],
    ids=[
        "params-string",
        "params-array",
        "method-number",
        "no-jsonrpc",
        "jsonrpc-1.0",
        "no-method",
    ],
)
def test_invalid_request_with_an_id_gets_invalid_request(
    raw: tuple[RawServer, Path], message: dict[str, Any]
) -> None:
    """An invalid request that carries an id is answered with -32600 and that id."""
    server, _ = raw
    _send_line(server, json.dumps(message))
    reply = _next_reply(server)
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == message["id"]
    assert reply["error"]["code"] == INVALID_REQUEST
    assert reply["error"]["message"].startswith("invalid request")
    _still_serving(server)


@pytest.mark.parametrize(
    "line",
    [
        '{"jsonrpc": "2.0", "id": true, "method": "ping"}',
        "[1, 2]",
        '{"jsonrpc": "2.0", "method": 7}',
    ],
    ids=["boolean-id", "array", "notification-method-number"],
)
def test_invalid_request_without_a_usable_id_gets_null_id(
    raw: tuple[RawServer, Path], line: str
) -> None:
    """An invalid request whose id cannot be echoed is answered with -32600 and id null."""
    server, _ = raw
    _send_line(server, line)
    reply = _next_reply(server)
    assert reply["id"] is None
    assert reply["error"]["code"] == INVALID_REQUEST
    _still_serving(server)


@pytest.mark.parametrize("line", ["this is not json", '{"jsonrpc": "2.0"', '{"id": 3,}'])
def test_unparseable_line_gets_parse_error(raw: tuple[RawServer, Path], line: str) -> None:
    """A line that is not JSON is answered with -32700 and id null, and serving goes on."""
    server, _ = raw
    _send_line(server, line)
    reply = _next_reply(server)
    assert reply == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": PARSE_ERROR, "message": "parse error: not valid JSON"},
    }
    _still_serving(server)


def test_invalid_utf8_gets_parse_error_with_its_id(raw: tuple[RawServer, Path]) -> None:
    """Bytes that are not UTF-8 are refused (not silently replaced), answering the request's id."""
    server, _ = raw
    assert server.process.stdin is not None
    server.process.stdin.buffer.write(
        b'{"jsonrpc":"2.0","id":31,"method":"tools/call","params":{"name":"probe_echo",'
        b'"arguments":{"text":"\xff\xfe"}}}\n'
    )
    server.process.stdin.flush()
    reply = _next_reply(server)
    assert reply["id"] == 31
    assert reply["error"] == {"code": PARSE_ERROR, "message": "parse error: not UTF-8"}
    _still_serving(server)


def test_lone_surrogate_in_arguments_is_an_audited_invalid_argument(
    raw: tuple[RawServer, Path],
) -> None:
    """A lone surrogate escape in tool arguments is an invalid-argument error, audited as denied."""
    server, audit = raw
    before = len(audit.read_text().splitlines())
    line = (
        '{"jsonrpc":"2.0","id":41,"method":"tools/call",'
        '"params":{"name":"probe_echo","arguments":{"text":"a\\ud800b"}}}'
    )
    _send_line(server, line)
    reply = _next_reply(server)
    assert reply["id"] == 41
    assert reply["result"]["isError"] is True
    text = reply["result"]["content"][0]["text"]
    assert text == "invalid arguments: text: not valid Unicode (a lone surrogate)"
    records = [json.loads(x) for x in audit.read_text().splitlines()[before:]]
    assert [(r["tool"], r["outcome"], r["error_type"]) for r in records] == [
        ("probe_echo", "denied", "InvalidArguments")
    ]
    _still_serving(server)


def test_lone_surrogate_outside_arguments_gets_invalid_request(
    raw: tuple[RawServer, Path],
) -> None:
    """A lone surrogate anywhere else (here a ping's params) is refused by the transport."""
    server, _ = raw
    _send_line(server, '{"jsonrpc":"2.0","id":42,"method":"ping","params":{"x":"\\udc00"}}')
    reply = _next_reply(server)
    assert reply["id"] == 42
    assert reply["error"]["code"] == -32602
    _still_serving(server)


@pytest.mark.parametrize("depth", [65, 900, 5000])
def test_deeply_nested_request_gets_an_error(raw: tuple[RawServer, Path], depth: int) -> None:
    """A request nested deeper than 64 levels is answered with -32600 (its id when parseable)."""
    server, _ = raw
    nested = "[" * depth + "]" * depth
    _send_line(
        server,
        '{"jsonrpc":"2.0","id":51,"method":"tools/call","params":{"name":"probe_echo",'
        f'"arguments":{{"text":{nested}}}}}}}',
    )
    reply = _next_reply(server)
    assert reply["error"]["code"] == INVALID_REQUEST
    assert reply["error"]["message"] == "invalid request: nested more than 64 levels deep"
    assert reply["id"] == (None if depth == 5000 else 51)
    _still_serving(server)


def test_nesting_within_the_limit_is_served(raw: tuple[RawServer, Path]) -> None:
    """Arguments nested well within the limit reach the tool (its own validation answers)."""
    server, _ = raw
    nested: Any = "x"
    for _ in range(50):
        nested = [nested]
    reply = server.ask(call(52, "probe_echo", text=nested))
    assert reply["result"]["isError"] is True
    assert reply["result"]["content"][0]["text"].startswith("invalid arguments: text:")


def test_over_long_line_gets_an_error_and_serving_goes_on(raw: tuple[RawServer, Path]) -> None:
    """A line over 4 MiB is skipped without being buffered and answered with -32600, id null."""
    server, _ = raw
    big = "x" * (4 * 1024 * 1024 + 10)
    _send_line(server, '{"jsonrpc":"2.0","id":61,"method":"ping","params":{"a":"' + big + '"}}')
    reply = _next_reply(server)
    assert reply["id"] is None
    assert reply["error"] == {
        "code": INVALID_REQUEST,
        "message": "invalid request: line longer than 4194304 bytes",
    }
    _still_serving(server)
