"""mcp_proxy results: a configurable size cap with an explanatory error, and one copy per result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastmcp.exceptions import ToolError

from tests.modules.test_mcp_proxy import TOKEN, proxied, stdio_config
from tests.test_redaction_base64_offsets import recoverable

pytestmark = pytest.mark.anyio


def sent_bytes(result: object) -> int:
    """How many bytes of the result's content and structured content reach the client."""
    content = [block.model_dump(mode="json") for block in result.content]  # type: ignore[attr-defined]
    structured = result.structured_content  # type: ignore[attr-defined]
    return len(json.dumps(content)) + (len(json.dumps(structured)) if structured else 0)


async def test_a_result_over_the_cap_is_refused_with_its_size(tmp_path: Path) -> None:
    """An upstream result larger than max_result_bytes fails with its size and the limit."""
    config = stdio_config(tools={"big": "read"}, max_result_bytes=100_000)
    async with proxied(tmp_path, config) as (client, _):
        with pytest.raises(ToolError) as raised:
            await client.call_tool("up_big", {"size": 200_000})
        fits = await client.call_tool("up_big", {"size": 90_000})
    assert "result too large (" in str(raised.value)
    assert "bytes, limit 100000)" in str(raised.value)
    assert json.loads(fits.content[0].text) == {"data": "x" * 90_000}


async def test_a_result_reaches_the_agent_once(tmp_path: Path) -> None:
    """A proxied structured result is sent once, as JSON text, not also as structured content."""
    async with proxied(tmp_path, stdio_config(tools={"big": "read"})) as (client, _):
        result = await client.call_tool("up_big", {"size": 500_000})
    assert json.loads(result.content[0].text) == {"data": "x" * 500_000}
    assert 500_000 < sent_bytes(result) < 600_000


async def test_the_default_cap_is_reported_not_a_transport_error(tmp_path: Path) -> None:
    """Past the default cap the agent is told the size and limit, not 'upstream call failed'."""
    async with proxied(tmp_path, stdio_config(tools={"big": "read"})) as (client, _):
        with pytest.raises(ToolError) as raised:
            await client.call_tool("up_big", {"size": 9_000_000})
    assert "result too large" in str(raised.value), str(raised.value)


@pytest.mark.parametrize("prefix", ["", "X", "X=", "abc", "abcd"])
async def test_base64_blocks_holding_the_token_at_any_offset_are_scrubbed(
    tmp_path: Path, prefix: str
) -> None:
    """An upstream image block and resource blob of base64(prefix + its token) reach the agent
    with no decodable copy of the token, whatever the prefix's length."""
    async with proxied(tmp_path, stdio_config(tools={"token_blobs": "read"})) as (client, _):
        result = await client.call_tool("up_token_blobs", {"prefix": prefix})
    text = json.dumps([block.model_dump(mode="json") for block in result.content])
    assert "[REDACTED]" in text
    for alphabet in (b"+/", b"-_"):
        assert not recoverable(TOKEN.encode(), text, alphabet)


async def test_image_and_resource_blocks_over_the_cap_are_refused(tmp_path: Path) -> None:
    """The cap counts non-text content too: base64 image and embedded-resource blocks larger
    than max_result_bytes fail with the size and the limit, and no part of them is sent."""
    config = stdio_config(tools={"token_blobs": "read"}, max_result_bytes=50_000)
    async with proxied(tmp_path, config) as (client, _):
        with pytest.raises(ToolError) as raised:
            await client.call_tool("up_token_blobs", {"prefix": "p" * 30_000})
        fits = await client.call_tool("up_token_blobs", {"prefix": "p" * 1_000})
    assert "result too large (" in str(raised.value)
    assert "bytes, limit 50000)" in str(raised.value)
    assert "cHBw" not in str(raised.value)  # base64 of "ppp": none of the blocks came along
    assert 1_000 < sent_bytes(fits) < 50_000
