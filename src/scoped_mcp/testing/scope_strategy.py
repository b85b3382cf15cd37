"""The contract every ``ScopeStrategy`` keeps, as a base class its tests subclass.

A third-party strategy proves itself with one import::

    from scoped_mcp.testing.scope_strategy import ScopeStrategyContract

    class TestMyScope(ScopeStrategyContract):
        valid_values = ("orders", "users")

        def make_strategy(self) -> ScopeStrategy:
            return MyScope()

The class name does not start with ``Test``, so pytest collects only the subclasses.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from scoped_mcp.errors import ScopeViolation
from scoped_mcp.identity import AgentContext
from scoped_mcp.scoping import ScopeStrategy

AGENT = AgentContext("agent-01", "build")
# Identifiers chosen so that naive concatenation would make them collide: "a" + "-b" == "a-b".
TRICKY_AGENTS = tuple(
    AgentContext(agent_id, "build")
    for agent_id in ("agent-01", "agent-02", "a", "a-b", "a_b", "ab", "b", "A", "a-b-c", "0")
)
CONTROL_CHARS = ("\x00", "\x01", "\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\x9b")


class ScopeStrategyContract:
    """Invariants of every scope strategy; subclasses provide the strategy and accepted values."""

    #: values the strategy accepts for every agent (at least one)
    valid_values: ClassVar[tuple[str, ...]] = ()
    #: False only for strategies that map every agent to the same operator-chosen resource
    isolates_agents: ClassVar[bool] = True

    def make_strategy(self) -> ScopeStrategy:
        """Return a fresh instance of the strategy under test."""
        raise NotImplementedError

    @pytest.fixture
    def strategy(self) -> ScopeStrategy:
        return self.make_strategy()

    def test_is_a_scope_strategy(self, strategy: ScopeStrategy) -> None:
        """The strategy implements the ScopeStrategy interface."""
        assert isinstance(strategy, ScopeStrategy)
        assert self.valid_values, "a contract subclass must list accepted values"

    def test_valid_values_give_strings(self, strategy: ScopeStrategy) -> None:
        """Every accepted value is scoped to a non-empty string."""
        for value in self.valid_values:
            result = strategy.apply(value, AGENT)
            assert isinstance(result, str)
            assert result

    def test_deterministic(self, strategy: ScopeStrategy) -> None:
        """The same value and agent always give the same result, also from a fresh instance."""
        other = self.make_strategy()
        for value in self.valid_values:
            first = strategy.apply(value, AGENT)
            assert strategy.apply(value, AGENT) == first
            assert other.apply(value, AGENT) == first

    def test_result_has_no_nul_or_control_characters(self, strategy: ScopeStrategy) -> None:
        """A scoped result never carries a NUL or control character to the backend."""
        for agent in TRICKY_AGENTS:
            for value in self.valid_values:
                result = strategy.apply(value, agent)
                assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in result)

    @pytest.mark.parametrize("char", CONTROL_CHARS)
    def test_refuses_control_characters(self, strategy: ScopeStrategy, char: str) -> None:
        """A value carrying a NUL or any control character is refused with ScopeViolation."""
        for value in self.valid_values:
            for hostile in (value + char, char + value, value[:1] + char + value[1:]):
                with pytest.raises(ScopeViolation):
                    strategy.apply(hostile, AGENT)

    @pytest.mark.parametrize("value", [None, 7, 1.5, ["a"], {"a": 1}, b"bytes"])
    def test_refuses_non_strings(self, strategy: ScopeStrategy, value: Any) -> None:
        """A value that is not a string is refused with ScopeViolation, never a TypeError."""
        with pytest.raises(ScopeViolation):
            strategy.apply(value, AGENT)

    def test_agents_never_collide(self) -> None:
        """No two agents can name the same scoped resource, unless the strategy says it shares.

        A sharing strategy (an operator's allowlist) must then give every agent the same answer,
        so that sharing is exactly what the operator wrote and nothing an agent chose.
        """
        strategy = self.make_strategy()
        if not self.isolates_agents:
            for value in self.valid_values:
                answers = {strategy.apply(value, agent) for agent in TRICKY_AGENTS}
                assert answers == {value}
            return
        owner: dict[str, str] = {}
        for agent in TRICKY_AGENTS:
            for value in self.valid_values:
                result = strategy.apply(value, agent)
                assert owner.setdefault(result, agent.agent_id) == agent.agent_id, (
                    f"{agent.agent_id} and {owner[result]} both reach {result!r}"
                )

    def test_does_not_mutate_agent_context(self, strategy: ScopeStrategy) -> None:
        """Applying the strategy leaves the agent's identity as it was."""
        before = (AGENT.agent_id, AGENT.agent_type)
        for value in self.valid_values:
            strategy.apply(value, AGENT)
        assert (AGENT.agent_id, AGENT.agent_type) == before
