"""The call pipeline scopes every Scoped parameter, optional ones too, before the body runs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastmcp.exceptions import ToolError
from pydantic import Field

from scoped_mcp.audit.log import open_audit_log
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import ToolModule, tool
from scoped_mcp.pipeline import input_schema
from scoped_mcp.redaction import Redactor
from scoped_mcp.scoping import Allowlist, NamespaceScope, Scoped, ScopedStr, ScopeStrategy
from tests.support import bound_tool

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

    @tool(mode="read")
    async def echo_room(
        self, room: Annotated[str, Scoped("rooms")], to: Annotated[list[str], Scoped("people")]
    ) -> Any:
        """Return the room and recipients as the body received them."""
        return {"room": room, "to": to}

    @tool(mode="read")
    async def echo_described(
        self,
        key: Annotated[ScopedStr, Field(description="A key.")],
        room: Annotated[
            Annotated[str, Scoped("rooms")] | None, Field(description="A room.")
        ] = None,
        to: Annotated[list[str] | None, Scoped("people"), Field(description="People.")] = None,
    ) -> Any:
        """Return the arguments as the body received them."""
        return {"key": key, "room": room, "to": to}

    def scope_strategies(self) -> Mapping[str, ScopeStrategy]:
        return {
            "rooms": Allowlist(["!a:hs"], what="room"),
            "people": Allowlist(["ann@x"], what="recipient"),
        }


class Unnamed(ToolModule):
    name = "unnamed"

    @tool(mode="read")
    async def echo(self, room: Annotated[str, Scoped("rooms")]) -> Any:
        """Return the room."""
        return room


def wrapped(tmp_path: Path, method: str) -> Any:
    ctx = AgentContext("agent-01", "research")
    module = Keys(ctx, {}, {})
    spec = next(s for s in Keys.tool_specs() if s.method == method)
    audit = open_audit_log(tmp_path / "audit.jsonl", ctx, Redactor())
    return bound_tool(
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
    from scoped_mcp.audit.records import argument_digest

    digest = argument_digest({"n": 10**5000, "s": "x"})
    assert digest["shape"]["s"] == {"type": "str", "len": 1}
    assert digest["sha256"] is None or len(digest["sha256"]) == 64


async def test_named_scope_strategies_scope_strings_and_lists(tmp_path: Path) -> None:
    """`Scoped("rooms")` uses the module's named strategy; a list has every element scoped."""
    call = wrapped(tmp_path, "echo_room")
    assert await call(room="!a:hs", to=["ann@x"]) == {"room": "!a:hs", "to": ["ann@x"]}
    with pytest.raises(ToolError, match="room is not in this agent's allowlist"):
        await call(room="!b:hs", to=["ann@x"])
    with pytest.raises(ToolError, match="recipient is not in this agent's allowlist"):
        await call(room="!a:hs", to=["ann@x", "eve@y"])


def test_a_strategy_name_the_module_lacks_is_refused_when_built(tmp_path: Path) -> None:
    """A `Scoped("rooms")` parameter with no "rooms" strategy fails at build, not at a call."""
    ctx = AgentContext("agent-01", "research")
    audit = open_audit_log(tmp_path / "audit.jsonl", ctx, Redactor())
    with pytest.raises(TypeError, match="no scope strategy named 'rooms'"):
        bound_tool(
            Unnamed(ctx, {}, {}),  # type: ignore[arg-type]
            Unnamed.tool_specs()[0],
            module_key="unnamed",
            tool_name="unnamed_echo",
            audit=audit,
            redactor=Redactor(),
        )


async def test_described_parameters_stay_scoped_and_carry_their_description(
    tmp_path: Path,
) -> None:
    """`Field(description=...)` beside or around a `Scoped` marker: the argument is still scoped
    (a list item by item, also when the list is optional) and the schema shows the description."""
    call = wrapped(tmp_path, "echo_described")
    assert await call(key="k", room="!a:hs", to=["ann@x"]) == {
        "key": "agent-01:k",
        "room": "!a:hs",
        "to": ["ann@x"],
    }
    assert await call(key="k") == {"key": "agent-01:k", "room": None, "to": None}
    with pytest.raises(ToolError, match="room is not in this agent's allowlist"):
        await call(key="k", room="!b:hs")
    with pytest.raises(ToolError, match="recipient is not in this agent's allowlist"):
        await call(key="k", to=["ann@x", "eve@y"])
    spec = next(s for s in Keys.tool_specs() if s.method == "echo_described")
    properties = input_schema(Keys, spec)["properties"]
    assert {name: p["description"] for name, p in properties.items()} == {
        "key": "A key.",
        "room": "A room.",
        "to": "People.",
    }
