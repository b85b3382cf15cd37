"""The public test kit: a module harness that goes through the real pipeline, and audit capture."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, ClassVar

import pytest

from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import ScopeViolation
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import ToolModule, tool
from scoped_mcp.scoping import Allowlist, NamespaceScope, Scoped, ScopedStr, ScopeStrategy
from scoped_mcp.testing.audit import capture_audit
from scoped_mcp.testing.harness import module_harness

pytestmark = pytest.mark.anyio
ECHO = "tests.testing.test_harness:EchoModule"
TOKEN = "harness-token-7Qx9"


class EchoModule(ToolModule):
    """Echoes scoped keys and leaks its token, so the harness can show the pipeline at work."""

    name = "echo"
    scoping = NamespaceScope()
    required_credentials: ClassVar[list[str]] = ["ECHO_TOKEN"]

    def __init__(self, agent_ctx: AgentContext, credentials: CredentialView, config: dict) -> None:
        super().__init__(agent_ctx, credentials, config)

    def scope_strategies(self) -> Mapping[str, ScopeStrategy]:
        return {"rooms": Allowlist(self.config.get("rooms", []), what="room")}

    @tool(mode="read")
    async def key(self, key: ScopedStr) -> str:
        """Return the key as the body received it."""
        return key

    @tool(mode="read")
    async def room(self, room: Annotated[str, Scoped("rooms")]) -> str:
        """Return the room."""
        return room

    @tool(mode="write")
    async def leak(self) -> str:
        """Return the module's token (the pipeline must scrub it)."""
        async with self.credentials.use("ECHO_TOKEN") as token:
            return f"token={token.text()}"


async def test_calls_are_scoped_scrubbed_and_audited(tmp_path: Path) -> None:
    """A call through the harness is scoped, its result scrubbed, and its record written."""
    env = {"ECHO_TOKEN": TOKEN}
    async with module_harness(tmp_path, "echo", {}, env=env, type=ECHO, mode="write") as h:
        assert await h.call("key", key="k") == "agent-01:k"
        leaked = await h.call("echo_leak")
        assert TOKEN not in leaked
        record = h.audit.last("tool_call")
        assert (record["tool"], record["outcome"]) == ("echo_leak", "ok")


async def test_refusals_are_denied_records(tmp_path: Path) -> None:
    """A scope refusal and an invalid argument both reach the agent as errors, audited denied."""
    env = {"ECHO_TOKEN": TOKEN}
    async with module_harness(tmp_path, "echo", {"rooms": ["!a:hs"]}, env=env, type=ECHO) as h:
        with capture_audit(h.audit.path) as audit:
            assert "not in this agent's allowlist" in await h.refuse("room", room="!b:hs")
            assert "invalid arguments" in await h.refuse("key", key=["not", "a", "string"])
        assert [r["outcome"] for r in audit.of("tool_call")] == ["denied", "denied"]
        assert "echo_leak" not in h.runtime.tool_names


async def test_direct_methods_are_scoped_and_raise_our_own_errors(tmp_path: Path) -> None:
    """`h.direct` runs a tool method with its arguments scoped, raising ScopeViolation itself."""
    env = {"ECHO_TOKEN": TOKEN}
    async with module_harness(tmp_path, "echo", {"rooms": ["!a:hs"]}, env=env, type=ECHO) as h:
        assert await h.direct.key(key="k") == "agent-01:k"
        with pytest.raises(ScopeViolation, match="allowlist"):
            await h.direct.room(room="!b:hs")
