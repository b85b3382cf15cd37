"""One stdin line to one JSON-RPC message, or the error that answers it.

Every line a client writes is either passed on as a message, skipped (a blank line, or a
malformed *response*: JSON-RPC never answers a response), or refused with the JSON-RPC error
that answers it: -32700 for text that is not JSON (or not UTF-8), -32600 for JSON that is not a
valid request, -32602 for a lone surrogate in parameters. A refusal echoes the request's id when
one can be read, else id null, so a client waiting for an id is never left waiting.

The fast path is the SDK's own: one ``validate_json``. Only a line it rejects, a line that may
nest too deeply, or one that may hold a lone surrogate escape is parsed a second time to say why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from mcp_types import JSONRPCMessage, JSONRPCNotification
from pydantic import ValidationError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602

# Could spell a UTF-16 surrogate: only then is the slower surrogate check worth running.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class Refusal:
    """The error that answers a line which is not a valid request."""

    request_id: str | int | None
    code: int
    message: str

    def encode(self) -> bytes:
        """The error response as one JSON line."""
        error = {"code": self.code, "message": self.message}
        body = {"jsonrpc": "2.0", "id": self.request_id, "error": error}
        return json.dumps(body, separators=(",", ":")).encode() + b"\n"


SKIP = None
"""A line that needs no answer: blank, or a malformed response from the client."""

Decoded = JSONRPCMessage | Refusal | None


def decode(line: bytes, *, max_depth: int) -> Decoded:
    """The message on ``line``, the ``Refusal`` answering it, or ``SKIP``."""
    text = line.strip()
    if not text:
        return SKIP
    may_nest = text.count(b"[") + text.count(b"{") > max_depth
    if not may_nest and not _SURROGATE_ESCAPE.search(text):
        try:
            message: JSONRPCMessage = types.jsonrpc_message_adapter.validate_json(
                text, by_name=False
            )
        except ValidationError:
            pass
        else:
            # pydantic reads a request with an unusable id ({"id": true}) as a notification.
            if not isinstance(message, JSONRPCNotification) or b'"id"' not in text:
                return message
    return _diagnose(text, max_depth=max_depth)


def _diagnose(text: bytes, *, max_depth: int) -> Decoded:
    """The slow path: parse with the standard library and say what is wrong, if anything."""
    obj = _parse(text, max_depth=max_depth)
    if isinstance(obj, Refusal):
        return obj
    response = "method" not in obj and ("result" in obj or "error" in obj)
    refusal = _refusal(obj, _echoable_id(obj), max_depth=max_depth)
    if refusal is None:
        try:
            message: JSONRPCMessage = types.jsonrpc_message_adapter.validate_python(
                obj, by_name=False
            )
        except ValidationError:
            refusal = Refusal(_echoable_id(obj), INVALID_REQUEST, "invalid request")
        else:
            return message
    return SKIP if response else refusal


def _parse(text: bytes, *, max_depth: int) -> dict[str, Any] | Refusal:
    """The JSON object on the line, or the parse error (or non-object) that answers it."""
    try:
        decoded, utf8 = text.decode("utf-8"), True
    except UnicodeDecodeError:
        decoded, utf8 = text.decode("utf-8", "replace"), False
    try:
        obj = json.loads(decoded)
    except RecursionError:
        return _too_deep(None, max_depth)
    except ValueError:
        return Refusal(None, PARSE_ERROR, "parse error: not valid JSON")
    if not utf8:
        return Refusal(_echoable_id(obj), PARSE_ERROR, "parse error: not UTF-8")
    if not isinstance(obj, dict):
        return Refusal(None, INVALID_REQUEST, "invalid request: a message is one JSON object")
    return obj


def _too_deep(request_id: str | int | None, max_depth: int) -> Refusal:
    return Refusal(
        request_id, INVALID_REQUEST, f"invalid request: nested more than {max_depth} levels deep"
    )


def _refusal(
    obj: dict[str, Any], request_id: str | int | None, *, max_depth: int
) -> Refusal | None:
    """Why a parsed message is refused, or ``None``; the checks a client can act on first."""
    if _deeper_than(obj, max_depth):
        return Refusal(
            request_id,
            INVALID_REQUEST,
            f"invalid request: nested more than {max_depth} levels deep",
        )
    problem = _envelope_problem(obj)
    if problem is not None:
        return Refusal(request_id, INVALID_REQUEST, f"invalid request: {problem}")
    if _has_surrogate(_outside_tool_arguments(obj)):
        return Refusal(request_id, INVALID_PARAMS, "invalid params: a string is not valid Unicode")
    return None


def _envelope_problem(obj: dict[str, Any]) -> str | None:
    """What is wrong with the JSON-RPC 2.0 envelope itself, in a few words."""
    if obj.get("jsonrpc") != "2.0":
        return '"jsonrpc" must be "2.0"'
    if "method" not in obj and "result" not in obj and "error" not in obj:
        return '"method" is missing'
    if "method" in obj and not isinstance(obj["method"], str):
        return '"method" must be a string'
    if "id" in obj and (isinstance(obj["id"], bool) or not isinstance(obj["id"], str | int)):
        return '"id" must be a string or an integer'
    params = obj.get("params")
    if params is not None and not isinstance(params, dict):
        return '"params" must be an object'
    return None


def _echoable_id(obj: Any) -> str | int | None:
    """The request id, if it is one an answer can carry (a string or an integer)."""
    if not isinstance(obj, dict):
        return None
    value = obj.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    if isinstance(value, str) and _has_surrogate(value):
        return None
    return value


def _outside_tool_arguments(obj: dict[str, Any]) -> Any:
    """The message less a ``tools/call``'s name and arguments (the audit boundary checks those)."""
    params = obj.get("params")
    if obj.get("method") != "tools/call" or not isinstance(params, dict):
        return obj
    rest = {k: v for k, v in params.items() if k not in ("name", "arguments")}
    return {**obj, "params": rest}


def _has_surrogate(value: Any) -> bool:
    """Whether any string (key or value) in ``value`` holds a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels deep."""
    level = [value]
    for _ in range(limit):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)
