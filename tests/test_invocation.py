"""The call pipeline scopes every Scoped parameter, optional ones too, before the body runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scoped_mcp.audit.log import open_audit_log
from scoped_mcp.identity import AgentContext
from scoped_mcp.invocation import wrap_tool
from scoped_mcp.modules._base import ToolModule, tool
from scoped_mcp.redaction import Redactor
from scoped_mcp.scoping import NamespaceScope, ScopedStr

pytestmark = pytest.mark.anyio


class Keys(ToolModule):
    name = "keys"
    scoping = NamespaceScope()

    @tool(mode="read")
    async def echo_optional(self, key: ScopedStr | None = None) -> Any:
        """Return the key as the body received it."""
        return key

    @tool(mode="read")
    async def echo_default(self, key: ScopedStr = "default") -> Any:
        """Return the key as the body received it."""
        return key


def wrapped(tmp_path: Path, method: str) -> Any:
    ctx = AgentContext("agent-01", "research")
    module = Keys(ctx, {}, {})
    spec = next(s for s in Keys.tool_specs() if s.method == method)
    audit = open_audit_log(tmp_path / "audit.jsonl", ctx, Redactor())
    return wrap_tool(
        module,
        spec,
        module_key="keys",
        tool_name=f"keys_{method}",
        audit=audit,
        redactor=Redactor(),
    )


async def test_optional_scoped_parameter_is_scoped(tmp_path: Path) -> None:
    """A `ScopedStr | None` argument reaches the body scoped; None stays None."""
    call = wrapped(tmp_path, "echo_optional")
    assert await call(key="k") == "agent-01:k"
    assert await call() is None


async def test_default_of_a_scoped_parameter_is_scoped(tmp_path: Path) -> None:
    """An omitted scoped argument's default is scoped too, never passed raw."""
    call = wrapped(tmp_path, "echo_default")
    assert await call() == "agent-01:default"


def test_argument_digest_never_fails() -> None:
    """Arguments the JSON encoder cannot render still get a digest record instead of an error."""
    from scoped_mcp.invocation import argument_digest

    digest = argument_digest({"n": 10**5000, "s": "x"})
    assert digest["shape"]["s"] == {"type": "str", "len": 1}
    assert digest["sha256"] is None or len(digest["sha256"]) == 64
