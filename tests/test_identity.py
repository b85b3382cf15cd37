"""AGENT_ID and AGENT_TYPE: required, and held to a charset that cannot escape a path or a name."""

from __future__ import annotations

import pytest

from scoped_mcp.errors import IdentityError
from scoped_mcp.identity import AgentContext, validate_name

UNSAFE_IDS = [
    pytest.param("../x", id="traversal"),
    pytest.param("a/b", id="slash"),
    pytest.param("", id="empty"),
    pytest.param("a" * 65, id="65-chars"),
    pytest.param("a b", id="space"),
    pytest.param("agent-é", id="unicode"),
    pytest.param("-a", id="leading-dash"),
    pytest.param("_a", id="leading-underscore"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a;rm", id="shell"),
    pytest.param("a'b", id="quote"),
    pytest.param("a.b", id="dot"),
]


@pytest.mark.parametrize("agent_id", UNSAFE_IDS)
def test_unsafe_agent_id_is_refused(agent_id: str) -> None:
    """An AGENT_ID outside [A-Za-z0-9][A-Za-z0-9_-]{0,63} is refused, naming the variable."""
    with pytest.raises(IdentityError) as caught:
        AgentContext(agent_id=agent_id, agent_type="research")
    assert "AGENT_ID" in caught.value.message
    assert "1-64 characters" in caught.value.message


@pytest.mark.parametrize("agent_id", ["a", "A-1", "research_01", "0abc", "a" * 64])
def test_safe_agent_ids_are_accepted(agent_id: str) -> None:
    """Letters, digits, '_' and '-' up to 64 characters (first one alphanumeric) are accepted."""
    assert AgentContext(agent_id=agent_id, agent_type="t").agent_id == agent_id


def test_unsafe_agent_type_is_refused() -> None:
    """AGENT_TYPE is held to the same rule, and the message names AGENT_TYPE."""
    with pytest.raises(IdentityError, match="AGENT_TYPE"):
        AgentContext(agent_id="a1", agent_type="../research")


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"AGENT_TYPE": "research"}, "AGENT_ID"),
        ({"AGENT_ID": "r1"}, "AGENT_TYPE"),
        ({"AGENT_ID": "", "AGENT_TYPE": "research"}, "AGENT_ID"),
        ({}, "AGENT_ID and AGENT_TYPE"),
    ],
)
def test_missing_identity_variables_are_named(environ: dict[str, str], named: str) -> None:
    """from_env refuses an absent or empty variable and says which one is missing."""
    with pytest.raises(IdentityError) as caught:
        AgentContext.from_env(environ)
    assert caught.value.message.startswith(f"{named} not set")
    assert caught.value.fix is not None


def test_from_env_reads_both_variables() -> None:
    """from_env takes the identity from AGENT_ID and AGENT_TYPE and nothing else."""
    ctx = AgentContext.from_env({"AGENT_ID": "r1", "AGENT_TYPE": "research", "USER": "x"})
    assert (ctx.agent_id, ctx.agent_type) == ("r1", "research")


def test_identity_is_immutable() -> None:
    """The identity cannot be changed after start-up."""
    ctx = AgentContext(agent_id="r1", agent_type="research")
    with pytest.raises(AttributeError):
        ctx.agent_id = "r2"  # type: ignore[misc]


def test_expand_replaces_only_the_two_identity_fields() -> None:
    """expand() fills {agent_id} and {agent_type}; other braces are left as they are."""
    ctx = AgentContext(agent_id="r1", agent_type="research")
    assert ctx.expand("{agent_type}-{agent_id}-{other}") == "research-r1-{other}"


def test_unprintable_value_is_shown_escaped() -> None:
    """A value with control characters is shown as a repr, so the message stays one line."""
    with pytest.raises(IdentityError) as caught:
        validate_name("a\x1b[31mb", "AGENT_ID")
    assert "\x1b" not in caught.value.message
