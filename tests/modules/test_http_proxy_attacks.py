"""http_proxy against answers from a hostile upstream, through the real call pipeline.

An answer that cannot be handed back as JSON comes back as its text; the call is audited.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime_support import answer, audit_records, runtime_for
from tests.services.fake_http import Recorded, Reply, serve_http

pytestmark = pytest.mark.anyio


def deep_json(request: Recorded) -> Reply:
    depth = int(request.path.rsplit("/", 1)[1])
    return Reply(200, b"[" * depth + b"]" * depth, headers={"Content-Type": "application/json"})


def surrogate_json(request: Recorded) -> Reply:
    return Reply(200, b'{"a": "\\ud800"}', headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("depth", [300, 5000])
async def test_http_proxy_deeply_nested_json_answer_comes_back_as_text(
    tmp_path: Path, depth: int
) -> None:
    """JSON nested too deep to return as JSON is handed back as its text, and audited "ok"."""
    with serve_http(deep_json) as server:
        config = {
            "services": {"s": {"base_url": server.url, "allow_private_networks": True}},
            "max_response_bytes": 100_000,
        }
        async with runtime_for(tmp_path, "http_proxy", config, {}, "read") as runtime:
            arguments = {"service": "s", "path": f"/d/{depth}"}
            result = await answer(runtime, "http_proxy_get", arguments)
    assert result["body"] == "[" * depth + "]" * depth
    assert "json" not in result
    assert [r["outcome"] for r in audit_records(tmp_path, "http_proxy_get")] == ["ok"]


async def test_http_proxy_json_answer_with_a_lone_surrogate_comes_back_as_text(
    tmp_path: Path,
) -> None:
    """A JSON answer whose string escapes a lone surrogate cannot be re-encoded: sent as text."""
    with serve_http(surrogate_json) as server:
        config = {"services": {"s": {"base_url": server.url, "allow_private_networks": True}}}
        async with runtime_for(tmp_path, "http_proxy", config, {}, "read") as runtime:
            result = await answer(runtime, "http_proxy_get", {"service": "s", "path": "/x"})
    assert result["body"] == '{"a": "\\ud800"}'
