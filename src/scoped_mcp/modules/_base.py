"""The module-authoring API: ``ToolModule`` and the ``@tool`` decorator.

A module is a class. Its ``@tool(mode=...)`` methods become MCP tools named ``{module}_{tool}``;
their docstrings become descriptions and their type hints the input schema. The framework wraps
every tool in the call pipeline (scope, audit, redaction, error boundary), so a module only holds
the backend logic. See docs/module-authoring.md.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel

from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.identity import AgentContext
from scoped_mcp.scoping import ScopeStrategy

if TYPE_CHECKING:
    from scoped_mcp.tool_control import ToolControl

ToolMode = Literal["read", "write"]
F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__scoped_mcp_tool__"
_TOOL_SPECS: dict[type, tuple[ToolSpec, ...]] = {}


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """What ``@tool`` recorded about a method."""

    mode: ToolMode
    name: str
    method: str


@dataclass(frozen=True, slots=True)
class DynamicTool:
    """A tool a module defines at start-up (say, discovered upstream) instead of with ``@tool``.

    ``name`` is without the module prefix; ``parameters`` is the JSON schema of its arguments;
    ``call`` receives the arguments as a dict. The framework registers it by mode like any
    ``@tool`` method and runs it through the same call pipeline.
    """

    name: str
    mode: ToolMode
    description: str
    parameters: Mapping[str, Any]
    call: Callable[[dict[str, Any]], Awaitable[Any]]


def tool(*, mode: ToolMode, name: str | None = None) -> Callable[[F], F]:
    """Mark a module method as a tool available in ``mode`` ("read" or "write").

    Read tools are registered in both read and write mode; write tools only in write mode.
    """
    if mode not in ("read", "write"):
        raise ValueError(f"@tool mode must be 'read' or 'write', not {mode!r}")

    def mark(func: F) -> F:
        setattr(func, _MARK, ToolSpec(mode=mode, name=name or func.__name__, method=func.__name__))
        return func

    return mark


class ToolModule:
    """Base class of every tool module.

    Class attributes a module sets:
      name                   the module's name (the manifest key for built-ins)
      scoping                its ScopeStrategy; bare ``Scoped`` parameters pass through it
      required_credentials   keys the module cannot run without (checked at start-up)
      optional_credentials   keys it uses when present
      config_model           a pydantic model validating the manifest's ``config:`` block
      tool_prefix            overrides the ``{module}`` part of tool names (default: manifest key)
    """

    name: ClassVar[str] = ""
    scoping: ClassVar[ScopeStrategy | None] = None
    required_credentials: ClassVar[Sequence[str]] = ()
    optional_credentials: ClassVar[Sequence[str]] = ()
    config_model: ClassVar[type[BaseModel] | None] = None
    tool_prefix: ClassVar[str | None] = None

    def __init__(self, agent_ctx: AgentContext, credentials: CredentialView, config: Any) -> None:
        self.agent_ctx = agent_ctx
        self.credentials = credentials
        self.config = config

    def bind_server(self, control: ToolControl) -> None:
        """Called once before ``startup`` with the module's handle on the running server (its
        registered tools, withdrawal, audit records); ignored by default."""

    async def startup(self) -> None:
        """Called once before the server answers; open clients or create directories here."""

    async def shutdown(self) -> None:
        """Called once when the server stops; close what ``startup`` opened."""

    def scope_strategies(self) -> Mapping[str, ScopeStrategy]:
        """The named strategies ``Scoped("name")`` parameters use, built from ``self.config``.

        Asked for once, after ``__init__``, when the server is built; none by default. A module
        with allowlists (rooms, recipients, buckets) returns e.g. ``{"rooms": Allowlist(...)}``.
        """
        return {}

    def dynamic_tools(self) -> Sequence[DynamicTool]:
        """Tools defined at run time, asked for once right after ``startup``; none by default."""
        return ()

    @classmethod
    def configured_tools(cls, config: Any) -> Sequence[tuple[str, ToolMode]]:
        """Names and modes of the dynamic tools this ``config`` allows, known before start-up.

        Lets ``scoped-mcp tools`` list what ``dynamic_tools`` will register; none by default.
        """
        return ()

    @classmethod
    def declared_credentials(cls, config: Any) -> tuple[Sequence[str], Sequence[str]]:
        """The (required, optional) credential keys for this validated ``config``.

        The class attributes by default; a module whose keys are named in its configuration
        (``mcp_proxy``) overrides it.
        """
        return cls.required_credentials, cls.optional_credentials

    @classmethod
    def configuration_warnings(cls, config: Any) -> Sequence[str]:
        """Safety this ``config`` gives up (``creds check`` shows each); none by default."""
        return ()

    @classmethod
    def tool_specs(cls) -> tuple[ToolSpec, ...]:
        """Every ``@tool`` method of the class, in definition order.

        Found once per class (walking a class's members touches every attribute it inherits: in
        a zygote's child, a copied page each) and kept: a class's tools do not change.
        """
        found = _TOOL_SPECS.get(cls)
        if found is None:
            specs = []
            for _, member in inspect.getmembers(cls, inspect.isfunction):
                spec = getattr(member, _MARK, None)
                if isinstance(spec, ToolSpec):
                    specs.append((member.__code__.co_firstlineno, spec))
            found = tuple(spec for _, spec in sorted(specs, key=lambda item: item[0]))
            _TOOL_SPECS[cls] = found
        return found

    @classmethod
    def is_write_only(cls) -> bool:
        """True for modules with no read tools (notification modules): they take no mode."""
        specs = cls.tool_specs()
        return bool(specs) and all(spec.mode == "write" for spec in specs)
