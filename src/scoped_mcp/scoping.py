"""Scope strategies: how a resource an agent names becomes one that belongs to that agent.

A strategy is one method, ``apply(value, agent_ctx) -> str``, that either returns the scoped form of
``value`` or raises ``ScopeViolation``. Strategies fail closed: ``AllOf()`` with nothing in it is an
error, and the only permissive strategy is named ``UnsafeNoScope`` and logs every time it is used.

Tool parameters annotated ``Annotated[str, Scoped]`` (or the alias ``ScopedStr``) are passed through
the module's strategy by the framework before the tool body runs, so a module cannot forget to scope
them; ``Annotated[str, Scoped("rooms")]`` names one of the strategies a module builds from its
config (``ToolModule.scope_strategies``). Modules written against the original API may still call
``self.scoping.apply()`` themselves.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Final

from scoped_mcp.errors import ScopeViolation
from scoped_mcp.identity import AgentContext

_log = logging.getLogger(__name__)

MAX_PATH_CHARS: Final = 4096
MAX_NAME_BYTES: Final = 255
MAX_KEY_CHARS: Final = 512
# Deeper trees gain nothing and defeat ordinary tools (recursive deletes hit recursion limits).
MAX_PATH_DEPTH: Final = 256
# Characters an agent id may contain (identity.py); a separator made only of these is ambiguous.
_ID_CHARS: Final = re.compile(r"[A-Za-z0-9_-]*")


class Scoped:
    """Annotation marker: this parameter names a resource and must pass a scope strategy.

    ``Annotated[str, Scoped]`` (bare, or ``Scoped()``) uses the module's ``scoping`` strategy;
    ``Annotated[str, Scoped("rooms")]`` uses the strategy the module names ``"rooms"`` in
    ``scope_strategies()``. A ``list[str]`` parameter has every element scoped. The call pipeline
    applies the strategy before the tool body runs; a strategy name the module does not define is
    refused when the server is built, not at the first call.
    """

    __slots__ = ("strategy",)

    def __init__(self, strategy: str | None = None) -> None:
        self.strategy = strategy

    def __repr__(self) -> str:
        return f"Scoped({self.strategy!r})" if self.strategy else "Scoped"


ScopedStr = Annotated[str, Scoped]


class ScopeStrategy(ABC):
    """Maps a resource named by the agent to the agent's own resource, or refuses."""

    @abstractmethod
    def apply(self, value: str, agent_ctx: AgentContext) -> str:
        """Return the scoped form of ``value``; raise ``ScopeViolation`` if it cannot be scoped."""


# C0, DEL, C1 (Unicode category Cc) and lone surrogates (Cs, undecodable bytes on disk).
_SUSPECT: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")


def _reject_control(value: str, what: str) -> None:
    if _SUSPECT.search(value) is None:
        return
    if "\x00" in value:
        raise ScopeViolation(f"{what} contains a NUL byte")
    if _CONTROL.search(value):
        raise ScopeViolation(f"{what} contains a control character")
    raise ScopeViolation(f"{what} is not valid Unicode (lone surrogate)")


def relative_parts(path: str) -> tuple[str, ...]:
    """Split an agent-supplied relative path into safe components, or raise ``ScopeViolation``.

    ``.`` and empty components are dropped; ``..`` is resolved lexically and refused if it would
    climb above the starting directory. Absolute paths and backslashes are refused outright.
    """
    if not isinstance(path, str):
        raise ScopeViolation("path must be a string")
    if len(path) > MAX_PATH_CHARS:
        raise ScopeViolation(f"path is longer than {MAX_PATH_CHARS} characters")
    _reject_control(path, "path")
    if path.startswith("/") or path.startswith("~"):
        raise ScopeViolation(
            "absolute paths are not allowed; use a path relative to your directory"
        )
    if "\\" in path:
        raise ScopeViolation("backslashes are not allowed in paths; use '/'")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ScopeViolation("path leaves your directory ('..' climbs above it)")
            parts.pop()
            continue
        if len(part.encode("utf-8", errors="surrogatepass")) > MAX_NAME_BYTES:
            raise ScopeViolation(f"a path component is longer than {MAX_NAME_BYTES} bytes")
        parts.append(part)
        if len(parts) > MAX_PATH_DEPTH:
            raise ScopeViolation(f"path is deeper than {MAX_PATH_DEPTH} directories")
    return tuple(parts)


class PrefixScope(ScopeStrategy):
    """Confines relative paths and keys under ``prefix`` (default ``agents/{agent_id}/``).

    ``apply("notes/a.md")`` for agent ``r1`` gives ``agents/r1/notes/a.md``. The result is purely
    lexical: code that opens it must still refuse symlinks (the filesystem module opens every
    component with no-follow semantics).
    """

    def __init__(self, prefix: str = "agents/{agent_id}/") -> None:
        if "{agent_id}" not in prefix:
            raise ValueError("PrefixScope prefix must contain {agent_id}")
        if any(part in (".", "..") for part in prefix.split("/")):
            raise ValueError("PrefixScope prefix must not contain '.' or '..' components")
        self.prefix = prefix
        self._roots: dict[AgentContext, tuple[str, ...]] = {}

    def root_parts(self, agent_ctx: AgentContext) -> tuple[str, ...]:
        """The agent's own root, as path components."""
        root = self._roots.get(agent_ctx)
        if root is None:
            root = tuple(p for p in agent_ctx.expand(self.prefix).split("/") if p)
            self._roots[agent_ctx] = root
        return root

    def apply(self, value: str, agent_ctx: AgentContext) -> str:
        return "/".join(self.root_parts(agent_ctx) + relative_parts(value))


class NamespaceScope(ScopeStrategy):
    """Prefixes keys with the agent's namespace: ``key`` becomes ``{agent_id}{separator}key``.

    The separator must contain a character no agent id can contain, or agent ``a`` with key
    ``b-x`` and agent ``a-b`` with key ``x`` would meet at ``a-b-x``.
    """

    def __init__(self, template: str = "{agent_id}", separator: str = ":") -> None:
        if "{agent_id}" not in template:
            raise ValueError("NamespaceScope template must contain {agent_id}")
        if _ID_CHARS.fullmatch(separator):
            raise ValueError(
                "NamespaceScope separator must contain a character agent ids cannot (such as ':')"
            )
        self.template = template
        self.separator = separator

    def apply(self, value: str, agent_ctx: AgentContext) -> str:
        if not isinstance(value, str) or not value:
            raise ScopeViolation("key must be a non-empty string")
        if len(value) > MAX_KEY_CHARS:
            raise ScopeViolation(f"key is longer than {MAX_KEY_CHARS} characters")
        _reject_control(value, "key")
        return f"{agent_ctx.expand(self.template)}{self.separator}{value}"


class PerAgentFile(ScopeStrategy):
    """Gives each agent its own file in a directory: ``{directory}/agent_{agent_id}.db``."""

    def __init__(self, template: str = "agent_{agent_id}.db") -> None:
        if "{agent_id}" not in template or "/" in template:
            raise ValueError("PerAgentFile template must be a file name containing {agent_id}")
        self.template = template

    def apply(self, value: str, agent_ctx: AgentContext) -> str:
        if not isinstance(value, str):
            raise ScopeViolation("directory must be a string")
        _reject_control(value, "directory")
        return str(Path(value) / agent_ctx.expand(self.template))


class Allowlist(ScopeStrategy):
    """Accepts only values from a fixed set given by the operator (rooms, recipients, buckets).

    The refusal reads "{what} is not in this agent's allowlist", or ``refusal`` when given (a
    module that words its refusals in its backend's terms).
    """

    def __init__(
        self, allowed: Iterable[str], *, what: str = "value", refusal: str | None = None
    ) -> None:
        self.allowed = frozenset(allowed)
        self.what = what
        self.refusal = refusal or f"{what} is not in this agent's allowlist"

    def apply(self, value: str, agent_ctx: AgentContext) -> str:
        if not isinstance(value, str) or value not in self.allowed:
            raise ScopeViolation(self.refusal)
        return value


class AllOf(ScopeStrategy):
    """Applies strategies in order, each to the previous one's result. Empty is an error."""

    def __init__(self, *strategies: ScopeStrategy) -> None:
        if not strategies:
            raise ValueError("AllOf() needs at least one strategy: an empty policy allows nothing")
        self.strategies = strategies

    def apply(self, value: str, agent_ctx: AgentContext) -> str:
        for strategy in self.strategies:
            value = strategy.apply(value, agent_ctx)
        return value


class UnsafeNoScope(ScopeStrategy):
    """Passes every value through unchanged. Logs a warning on every use; for trusted tools only."""

    def apply(self, value: str, agent_ctx: AgentContext) -> str:
        _log.warning("unscoped value passed through UnsafeNoScope for agent %s", agent_ctx.agent_id)
        return value
