"""The audit step that stamps each record written during an HTTP request with the client address.

Tool calls run in the MCP session's task, not the request's, so the address is read from the
request FastMCP attaches to the MCP request context (``get_http_request``), not from a variable
the guard could set.
"""

from __future__ import annotations

from typing import Any

from fastmcp.server.dependencies import get_http_request

from scoped_mcp.http.guard import client_of


def add_client_address(record: dict[str, Any]) -> dict[str, Any]:
    """Add ``client`` (``host:port`` or ``unix``) when the record is written inside a request."""
    if "client" in record:
        return record
    try:
        request = get_http_request()
    except RuntimeError:
        return record
    return {**record, "client": client_of(request.scope)}
