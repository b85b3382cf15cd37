"""The line decoder on its own: what is passed on, skipped or refused, and with which id."""

from __future__ import annotations

from mcp_types import JSONRPCNotification, JSONRPCRequest

from scoped_mcp.stdio.framing import INVALID_REQUEST, Refusal, decode


def test_blank_line_and_malformed_response_are_skipped() -> None:
    """A blank line and a malformed response need no answer (JSON-RPC never answers a response)."""
    assert decode(b"   ", max_depth=64) is None
    assert decode(b'{"jsonrpc":"2.0","id":3,"result":5}', max_depth=64) is None
    assert decode(b'{"jsonrpc":"1.0","id":3,"error":{}}', max_depth=64) is None


def test_notification_whose_params_hold_an_id_key_is_passed_on() -> None:
    """An "id" inside a notification's params is data, not a request id."""
    decoded = decode(b'{"jsonrpc":"2.0","method":"n/x","params":{"id":true}}', max_depth=64)
    assert isinstance(decoded, JSONRPCNotification)


def test_many_brackets_within_the_depth_limit_are_passed_on() -> None:
    """A wide (not deep) request with more brackets than the depth limit is served."""
    wide = ",".join(["[]"] * 100)
    line = f'{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"a":[{wide}]}}}}'.encode()
    assert isinstance(decode(line, max_depth=64), JSONRPCRequest)


def test_surrogate_in_a_tool_call_name_or_arguments_is_left_to_the_audit_boundary() -> None:
    """A tools/call with a lone surrogate in its name or arguments is passed on to be audited."""
    line = (
        b'{"jsonrpc":"2.0","id":2,"method":"tools/call",'
        b'"params":{"name":"t\\ud800","arguments":{"\\udfff":"\\ud800"}}}'
    )
    assert isinstance(decode(line, max_depth=64), JSONRPCRequest)


def test_surrogate_id_is_answered_with_null() -> None:
    """An id that cannot be written back as UTF-8 is answered with id null."""
    decoded = decode(b'{"jsonrpc":"2.0","id":"\\ud800","method":"ping"}', max_depth=64)
    assert decoded == Refusal(None, -32602, "invalid params: a string is not valid Unicode")


def test_refusal_encodes_as_one_json_rpc_line() -> None:
    """A refusal is one compact JSON-RPC error line."""
    line = Refusal(7, INVALID_REQUEST, "invalid request").encode()
    assert line == b'{"jsonrpc":"2.0","id":7,"error":{"code":-32600,"message":"invalid request"}}\n'
