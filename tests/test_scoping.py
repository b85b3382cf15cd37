"""Scope strategies: table-driven cases, properties over arbitrary input, and the contract suite."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoped_mcp.errors import ScopeViolation
from scoped_mcp.identity import AgentContext
from scoped_mcp.scoping import (
    MAX_NAME_BYTES,
    MAX_PATH_CHARS,
    AllOf,
    Allowlist,
    NamespaceScope,
    PerAgentFile,
    PrefixScope,
    ScopeStrategy,
    UnsafeNoScope,
    relative_parts,
)
from scoped_mcp.testing.scope_strategy import ScopeStrategyContract

AGENT = AgentContext("agent-01", "build")
OTHER = AgentContext("agent-02", "build")

# -- relative_parts ---------------------------------------------------------------------------

ACCEPTED = [
    ("a", ("a",)),
    ("a/b.txt", ("a", "b.txt")),
    ("./a", ("a",)),
    ("a/./b", ("a", "b")),
    ("a//b", ("a", "b")),
    ("a/", ("a",)),
    ("a/b/", ("a", "b")),
    ("", ()),
    (".", ()),
    ("./", ()),
    ("a/..", ()),
    ("a/../b", ("b",)),
    ("a/b/../../c", ("c",)),
    ("...", ("...",)),
    ("..a", ("..a",)),
    ("a..", ("a..",)),
    ("%2e%2e/x", ("%2e%2e", "x")),
    ("%2e%2e%2fx", ("%2e%2e%2fx",)),
    ("..%2f..%2fx", ("..%2f..%2fx",)),
    ("a/~", ("a", "~")),
    ("C:/x", ("C:", "x")),
    ("caf\u00e9", ("caf\u00e9",)),
    ("cafe\u0301", ("cafe\u0301",)),
    ("x" * MAX_NAME_BYTES, ("x" * MAX_NAME_BYTES,)),
    ("/".join(["d"] * 256), ("d",) * 256),
]

REFUSED = [
    ("..", "leaves your directory"),
    ("../x", "leaves your directory"),
    ("../agent-02/x", "leaves your directory"),
    ("notes/../../x", "leaves your directory"),
    ("notes/../../agent-02/secret", "leaves your directory"),
    ("a/b/../../..", "leaves your directory"),
    ("./..", "leaves your directory"),
    ("a/../../../../etc/passwd", "leaves your directory"),
    ("/etc/passwd", "absolute"),
    ("/", "absolute"),
    ("//x", "absolute"),
    ("~", "absolute"),
    ("~/x", "absolute"),
    ("~root/.ssh/id_rsa", "absolute"),
    ("a\\b", "backslash"),
    ("..\\..\\x", "backslash"),
    ("C:\\x", "backslash"),
    ("a\x00b", "NUL"),
    ("\x00", "NUL"),
    ("a\nb", "control"),
    ("a\rb", "control"),
    ("a\tb", "control"),
    ("\x1b[2J", "control"),
    ("a\x7fb", "control"),
    ("a\x85b", "control"),
    ("a\x9bb", "control"),
    ("a\ud800b", "not valid Unicode"),
    ("\udcff", "not valid Unicode"),
    ("x" * (MAX_NAME_BYTES + 1), "longer than"),
    ("\u00e9" * 128, "longer than"),
    ("x" * (MAX_PATH_CHARS + 1), "longer than"),
    ("a/" * 50_000, "longer than"),
    ("/".join(["d"] * 257), "deeper than"),
]


@pytest.mark.parametrize(("path", "parts"), ACCEPTED)
def test_relative_parts_accepts(path: str, parts: tuple[str, ...]) -> None:
    """Harmless relative paths split into literal components that stay inside the directory."""
    assert relative_parts(path) == parts


@pytest.mark.parametrize(("path", "reason"), REFUSED)
def test_relative_parts_refuses(path: str, reason: str) -> None:
    """Paths that climb out, are absolute, or carry hostile characters are refused with a reason."""
    with pytest.raises(ScopeViolation, match=reason) as info:
        relative_parts(path)
    assert len(info.value.message) < 120
    if len(path) >= 8:
        assert path[:20] not in info.value.message


@pytest.mark.parametrize("value", [None, 3, ["a"], b"a"])
def test_relative_parts_refuses_non_strings(value: object) -> None:
    """A path that is not a string is refused, not crashed on."""
    with pytest.raises(ScopeViolation, match="string"):
        relative_parts(value)  # type: ignore[arg-type]


# -- PrefixScope ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "scoped"),
    [
        ("notes/a.md", "agents/agent-01/notes/a.md"),
        ("", "agents/agent-01"),
        ("notes/../a.md", "agents/agent-01/a.md"),
        ("%2e%2e/x", "agents/agent-01/%2e%2e/x"),
    ],
)
def test_prefix_scope_maps_under_agent_root(path: str, scoped: str) -> None:
    """PrefixScope puts every accepted path under agents/{agent_id}/."""
    assert PrefixScope().apply(path, AGENT) == scoped


def test_prefix_scope_custom_prefix() -> None:
    """A custom prefix may use {agent_type} as well as {agent_id}."""
    scope = PrefixScope("teams/{agent_type}/{agent_id}/")
    assert scope.apply("x", AGENT) == "teams/build/agent-01/x"
    assert scope.root_parts(AGENT) == ("teams", "build", "agent-01")


@pytest.mark.parametrize("prefix", ["agents/", "shared/{agent_type}/", ""])
def test_prefix_scope_requires_agent_id(prefix: str) -> None:
    """A prefix without {agent_id} would let agents share files, so it is a construction error."""
    with pytest.raises(ValueError, match="agent_id"):
        PrefixScope(prefix)


@pytest.mark.parametrize("prefix", ["agents/{agent_id}/..", "../{agent_id}", "a/./{agent_id}"])
def test_prefix_scope_refuses_dot_components(prefix: str) -> None:
    """A prefix containing '.' or '..' components is a construction error, not a silent escape."""
    with pytest.raises(ValueError, match="prefix"):
        PrefixScope(prefix)


HOSTILE_ALPHABET = st.sampled_from(
    ["/", ".", "..", "\\", "~", "\x00", "\n", "%2e", "a", "agents", "agent-02", "\u00e9", " "]
)
PATHS = st.one_of(st.text(), st.lists(HOSTILE_ALPHABET, max_size=30).map("".join))
AGENT_IDS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,15}\Z")


@settings(max_examples=300, deadline=None)
@given(path=PATHS)
def test_prefix_scope_property_confines(path: str) -> None:
    """For any string, PrefixScope either refuses it or returns a path under agents/{agent_id}/."""
    try:
        scoped = PrefixScope().apply(path, AGENT)
    except ScopeViolation:
        return
    parts = scoped.split("/")
    assert parts[:2] == ["agents", "agent-01"]
    assert all(part not in ("", ".", "..") for part in parts)
    assert "\x00" not in scoped
    assert "\\" not in scoped


@settings(max_examples=200, deadline=None)
@given(path=PATHS)
def test_relative_parts_property_stable(path: str) -> None:
    """Accepted paths split into clean components, and re-joining them gives the same split."""
    try:
        parts = relative_parts(path)
    except ScopeViolation:
        return
    assert all(part and part not in (".", "..") and "/" not in part for part in parts)
    assert relative_parts("/".join(parts)) == parts


@settings(max_examples=200, deadline=None)
@given(first=AGENT_IDS, second=AGENT_IDS, path_a=PATHS, path_b=PATHS)
def test_prefix_scope_property_agents_disjoint(
    first: str, second: str, path_a: str, path_b: str
) -> None:
    """Two different agents can never be scoped to the same path, whatever paths they send."""
    if first == second:
        return
    scope = PrefixScope()
    try:
        a = scope.apply(path_a, AgentContext(first, "t"))
        b = scope.apply(path_b, AgentContext(second, "t"))
    except ScopeViolation:
        return
    assert a != b
    assert not b.startswith(a + "/") or a.split("/")[1] == first


# -- NamespaceScope ---------------------------------------------------------------------------


def test_namespace_scope_prefixes_key() -> None:
    """NamespaceScope turns key into {agent_id}:key."""
    assert NamespaceScope().apply("cache:x", AGENT) == "agent-01:cache:x"
    assert NamespaceScope("{agent_type}.{agent_id}", "/").apply("k", AGENT) == "build.agent-01/k"


@pytest.mark.parametrize("value", ["", "k" * 513])
def test_namespace_scope_refuses_empty_and_long(value: str) -> None:
    """Empty keys and keys over the length limit are refused."""
    with pytest.raises(ScopeViolation):
        NamespaceScope().apply(value, AGENT)


@pytest.mark.parametrize(
    ("template", "separator"),
    [
        ("{agent_type}", ":"),
        ("shared", ":"),
        ("{agent_id}", "-"),
        ("{agent_id}", "_x"),
        ("{agent_id}", ""),
    ],
)
def test_namespace_scope_refuses_colliding_configuration(template: str, separator: str) -> None:
    """A namespace without {agent_id}, or a separator agent ids can contain, is refused at once."""
    with pytest.raises(ValueError, match="NamespaceScope"):
        NamespaceScope(template, separator)


@settings(max_examples=200, deadline=None)
@given(first=AGENT_IDS, second=AGENT_IDS, key_a=st.text(), key_b=st.text())
def test_namespace_scope_property_agents_disjoint(
    first: str, second: str, key_a: str, key_b: str
) -> None:
    """Two different agents never reach the same namespaced key."""
    if first == second:
        return
    scope = NamespaceScope()
    try:
        a = scope.apply(key_a, AgentContext(first, "t"))
        b = scope.apply(key_b, AgentContext(second, "t"))
    except ScopeViolation:
        return
    assert a != b


# -- PerAgentFile, Allowlist, AllOf, UnsafeNoScope --------------------------------------------


def test_per_agent_file_names_one_file_per_agent() -> None:
    """PerAgentFile gives {directory}/agent_{agent_id}.db."""
    assert PerAgentFile().apply("/data/sqlite", AGENT) == "/data/sqlite/agent_agent-01.db"
    assert PerAgentFile("{agent_id}.sqlite").apply("db", OTHER) == "db/agent-02.sqlite"


@pytest.mark.parametrize("template", ["agent.db", "sub/{agent_id}.db", "{agent_type}.db"])
def test_per_agent_file_refuses_bad_template(template: str) -> None:
    """A template without {agent_id}, or with a directory part, is a construction error."""
    with pytest.raises(ValueError, match="PerAgentFile"):
        PerAgentFile(template)


def test_allowlist_accepts_only_listed_values() -> None:
    """Allowlist returns listed values unchanged and refuses everything else without echoing it."""
    scope = Allowlist(["ops", "alerts"], what="room")
    assert scope.apply("ops", AGENT) == "ops"
    with pytest.raises(ScopeViolation, match="room is not in") as info:
        scope.apply("secret-room", AGENT)
    assert "secret-room" not in info.value.message
    with pytest.raises(ScopeViolation):
        scope.apply("OPS", AGENT)


def test_allowlist_refusal_words_the_refusal_in_the_modules_terms() -> None:
    """``refusal=`` replaces the default wording; the value is still never echoed."""
    scope = Allowlist(["f1"], refusal="folder is not one this agent may read")
    with pytest.raises(ScopeViolation) as info:
        scope.apply("other-folder", AGENT)
    assert info.value.message == "folder is not one this agent may read"


def test_empty_allowlist_refuses_everything() -> None:
    """An empty allowlist fails closed."""
    with pytest.raises(ScopeViolation):
        Allowlist([]).apply("", AGENT)


def test_all_of_empty_is_an_error() -> None:
    """AllOf() with no strategies is a construction error: an empty policy must not allow all."""
    with pytest.raises(ValueError, match="at least one"):
        AllOf()


def test_all_of_chains_in_order() -> None:
    """AllOf applies each strategy to the previous result and stops at the first refusal."""
    scope = AllOf(Allowlist(["notes/a.md"]), PrefixScope())
    assert scope.apply("notes/a.md", AGENT) == "agents/agent-01/notes/a.md"
    with pytest.raises(ScopeViolation):
        scope.apply("notes/b.md", AGENT)


def test_unsafe_no_scope_warns_every_time(caplog: pytest.LogCaptureFixture) -> None:
    """UnsafeNoScope passes the value through unchanged and logs a warning on every use."""
    scope = UnsafeNoScope()
    with caplog.at_level(logging.WARNING, logger="scoped_mcp.scoping"):
        assert scope.apply("../../etc/passwd", AGENT) == "../../etc/passwd"
        assert scope.apply("x", AGENT) == "x"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("UnsafeNoScope" in r.getMessage() for r in warnings)


def test_scope_strategy_is_abstract() -> None:
    """ScopeStrategy cannot be instantiated without apply()."""
    with pytest.raises(TypeError):
        ScopeStrategy()  # type: ignore[abstract]


# -- the contract, per strategy ---------------------------------------------------------------


class TestPrefixScopeContract(ScopeStrategyContract):
    valid_values = ("a", "notes/a.md", "-b/x", "b", "", "x/../y", "%2e%2e")

    def make_strategy(self) -> ScopeStrategy:
        return PrefixScope()


class TestNamespaceScopeContract(ScopeStrategyContract):
    valid_values = ("k", "b:x", ":x", "-b", "cache/a", "a b")

    def make_strategy(self) -> ScopeStrategy:
        return NamespaceScope()


class TestPerAgentFileContract(ScopeStrategyContract):
    valid_values = ("/data/sqlite", "db", "/srv/a b")

    def make_strategy(self) -> ScopeStrategy:
        return PerAgentFile()


class TestAllowlistContract(ScopeStrategyContract):
    valid_values = ("ops", "alerts", "room-1")
    isolates_agents = False

    def make_strategy(self) -> ScopeStrategy:
        return Allowlist(self.valid_values, what="room")


class TestAllOfContract(ScopeStrategyContract):
    valid_values = ("notes/a.md", "logs")

    def make_strategy(self) -> ScopeStrategy:
        return AllOf(Allowlist(self.valid_values), PrefixScope())
