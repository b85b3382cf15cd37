"""A Redis module for scoped-mcp: each agent reads and writes only keys in its own namespace.

This is the module-authoring walkthrough of README.md, as code that runs. Load it from a manifest
with ``type: redis_module:RedisModule`` (this directory on PYTHONPATH), or package it and register
it in the ``scoped_mcp.modules`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from scoped_mcp.errors import InvalidArgument
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import ToolModule, tool
from scoped_mcp.scoping import NamespaceScope


class RedisConfig(BaseModel):
    """The manifest's ``config:`` block for this module."""

    max_value_bytes: int = Field(default=64 * 1024, gt=0, le=16 * 1024 * 1024)
    max_ttl: int = Field(default=7 * 86400, gt=0, description="Longest TTL (seconds) allowed.")


class RedisModule(ToolModule):
    """get_key (read) and set_key (write) on keys prefixed with ``{agent_id}:``."""

    name = "redis"
    scoping = NamespaceScope()  # "notes" becomes "research-01:notes"
    required_credentials = ("REDIS_URL",)  # the agent never sees it: the server holds it
    config_model = RedisConfig

    def __init__(
        self, agent_ctx: AgentContext, credentials: Mapping[str, str], config: Any
    ) -> None:
        super().__init__(agent_ctx, credentials, config)
        # from_url connects lazily, on the first command.
        url = credentials["REDIS_URL"]
        self._redis = aioredis.from_url(url, decode_responses=True)  # type: ignore[no-untyped-call]

    async def shutdown(self) -> None:
        await self._redis.aclose()

    @tool(mode="read")
    async def get_key(self, key: str) -> str | None:
        """Get a value from your namespace (null if the key does not exist)."""
        scoped_key = self.scoping.apply(key, self.agent_ctx)
        value: str | None = await self._redis.get(scoped_key)
        return value

    @tool(mode="write")
    async def set_key(self, key: str, value: str, ttl: int = 0) -> bool:
        """Set a key in your namespace; ttl in seconds (0: no expiry)."""
        scoped_key = self.scoping.apply(key, self.agent_ctx)
        if len(value.encode()) > self.config.max_value_bytes:
            raise InvalidArgument(f"value is larger than {self.config.max_value_bytes} bytes")
        if not 0 <= ttl <= self.config.max_ttl:
            raise InvalidArgument(f"ttl must be between 0 and {self.config.max_ttl} seconds")
        return bool(await self._redis.set(scoped_key, value, ex=ttl or None))
