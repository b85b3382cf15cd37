"""``ToolModule.tool_specs``: found once per class, in definition order, per subclass."""

from __future__ import annotations

from scoped_mcp.modules import ToolModule, tool


class Base(ToolModule):
    name = "base"

    @tool(mode="read")
    async def second(self) -> str:
        """Defined first, named second."""
        return "b"

    @tool(mode="write")
    async def first(self) -> str:
        """Defined second."""
        return "a"


class Child(Base):
    name = "child"

    @tool(mode="read")
    async def third(self) -> str:
        """Only the subclass has it."""
        return "c"


def test_specs_are_in_definition_order_and_found_once() -> None:
    specs = Base.tool_specs()
    assert [s.method for s in specs] == ["second", "first"]
    assert Base.tool_specs() is specs


def test_a_subclass_has_its_own_specs() -> None:
    assert [s.method for s in Child.tool_specs()] == ["second", "first", "third"]
    assert [s.method for s in Base.tool_specs()] == ["second", "first"]
    assert Child.tool_specs() is not Base.tool_specs()
