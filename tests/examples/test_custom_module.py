"""examples/custom-module: the Redis module runs against a real redis-server, scoped per agent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import yaml

from scoped_mcp.testing.harness import write_manifest
from tests.services.redis_server import redis_server
from tests.support import ServerHandle

redis = pytest.importorskip("redis", reason="install redis: pip install -e '.[dev]'")

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "custom-module"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (never the machine's own 6379)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


def read_only_copy(tmp_path: Path) -> Path:
    """The example manifest with mode: read, as the README's last step shows."""
    data = yaml.safe_load((EXAMPLE / "manifest.yml").read_text())
    data["modules"]["redis"]["mode"] = "read"
    path = tmp_path / "read.yml"
    write_manifest(path, data)
    return path


@pytest.mark.anyio
async def test_agents_share_redis_but_not_keys(
    redis_url: str,
    tmp_path: Path,
    serve: Callable[..., AbstractAsyncContextManager[ServerHandle]],
) -> None:
    """Two agents set the same key name; each reads its own value, stored under its own prefix."""
    env = {"PYTHONPATH": str(EXAMPLE), "REDIS_URL": redis_url}
    manifest = EXAMPLE / "manifest.yml"
    async with serve(manifest, agent_id="research-01", env=env) as first:
        assert await first.tool_names() == ["redis_get_key", "redis_set_key"]
        assert await first.call("redis_set_key", {"key": "notes", "value": "one"}) is True
        async with serve(manifest, agent_id="research-02", env=env) as second:
            assert await second.call("redis_get_key", {"key": "notes"}) is None
            await second.call("redis_set_key", {"key": "notes", "value": "two", "ttl": 60})
        assert await first.call("redis_get_key", {"key": "notes"}) == "one"
        refused = await first.error("redis_set_key", {"key": "x", "value": "v", "ttl": -1})
        assert "ttl" in refused
    direct = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert direct.get("research-01:notes") == "one"
        assert direct.get("research-02:notes") == "two"
        assert 0 < direct.ttl("research-02:notes") <= 60
        assert direct.get("notes") is None
    finally:
        direct.close()
    assert redis_url not in first.stderr() + str(first.audit_records())


@pytest.mark.anyio
async def test_read_mode_registers_get_key_only(
    redis_url: str,
    tmp_path: Path,
    serve: Callable[..., AbstractAsyncContextManager[ServerHandle]],
) -> None:
    """With mode: read the agent gets redis_get_key and no way to write."""
    env = {"PYTHONPATH": str(EXAMPLE), "REDIS_URL": redis_url}
    async with serve(read_only_copy(tmp_path), agent_id="research-03", env=env) as server:
        assert await server.tool_names() == ["redis_get_key"]
        assert "unknown tool" in await server.error("redis_set_key", {"key": "k", "value": "v"})
