"""``scoped-mcp approvals list|show ID|approve ID|deny ID [--reason]``: the local channel.

Talks to every running server of this user through its control socket
(``$XDG_RUNTIME_DIR/scoped-mcp/approvals/``). ``approve`` and ``deny`` go to each server until one
knows the id. Exit codes: 0 done, 1 refused or unknown id, 2 no usable runtime directory.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from scoped_mcp.approvals.control import client
from scoped_mcp.errors import ConfigError

EXIT_OK, EXIT_REFUSED, EXIT_CONFIG = 0, 1, 2


def run(
    action: str,
    request_id: str | None,
    *,
    reason: str | None,
    as_json: bool,
    environ: Mapping[str, str],
) -> int:
    """Run one approvals sub-command and print its outcome."""
    try:
        paths = client.sockets(environ)
    except ConfigError as exc:
        print(f"scoped-mcp: {exc.diagnostics()}", file=sys.stderr)
        return EXIT_CONFIG
    if action == "list":
        return _list(paths, as_json=as_json)
    message: dict[str, Any] = {"op": action, "id": request_id}
    if reason is not None:
        message["reason"] = reason
    errors = []
    for path in paths:
        answer = client.ask(path, message)
        if answer.reply is not None and answer.reply.get("ok"):
            _print_request(answer.reply, as_json=as_json, action=action)
            return EXIT_OK
        error = answer.error or str((answer.reply or {}).get("error", "no answer"))
        if not error.startswith("no request "):
            errors.append(error)
    for error in errors:
        print(f"scoped-mcp: {error}", file=sys.stderr)
    if not errors:
        print(f"scoped-mcp: no running server has request {request_id}", file=sys.stderr)
    return EXIT_REFUSED


def _list(paths: list[Any], *, as_json: bool) -> int:
    found: list[dict[str, Any]] = []
    for path in paths:
        answer = client.ask(path, {"op": "list"})
        if answer.reply is None or not answer.reply.get("ok"):
            continue
        server = answer.reply.get("server", {})
        for request in answer.reply.get("requests", []):
            found.append({**request, "pid": server.get("pid")})
    if as_json:
        print(json.dumps(found, indent=2))
        return EXIT_OK
    if not found:
        print("no requests waiting")
        return EXIT_OK
    for request in found:
        print(
            f"{request['id']}  {request['state']:8}  {request['agent_id']}  {request['tool']}  "
            f"expires in {request['expires_in']:.0f} s"
        )
        print(f"    {request['arguments']}")
    return EXIT_OK


def _print_request(reply: dict[str, Any], *, as_json: bool, action: str) -> None:
    request = reply.get("request", {})
    if as_json:
        print(json.dumps(request, indent=2))
        return
    if action in ("approve", "deny"):
        print(f"{request.get('id')}: {request.get('state')} ({request.get('tool')})")
        return
    for key, value in request.items():
        print(f"{key}: {value}")
