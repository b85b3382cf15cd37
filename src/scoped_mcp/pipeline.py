"""The call pipeline: the named steps every tool call passes, static and dynamic tools alike.

A step is ``async def step(call, proceed) -> result``. Steps wrap each other in the order of
``STEPS``, outermost first: what a step does before ``await proceed()`` happens in list order, what
it does after, in reverse. So a call is audited (outermost, whatever happens), its errors mapped,
its result scrubbed, its scoped arguments resolved, its start written ahead, and only then does the
body run::

    write_audit -> answer_exposure -> map_errors -> scrub_result -> resolve_scopes -> limit_rate
        -> [approval] -> write_ahead -> run_body

``scrub_result`` and ``map_errors`` scrub under ``Redactor.watching``: a released value found in
what is bound for the agent is noted on the call, and ``answer_exposure`` hands those owners to
the pipeline's ``on_exposed`` hook (``credentials/exposure.py``) before the call's record is
written.

Fail closed on the audit log: ``write_ahead`` writes a ``call_start`` record before the body
runs, so a call whose record cannot be written (a full disk) is refused and changes nothing; and
a call whose final record cannot be written returns our short error, never its result.

A later step (a rate limit, an approval gate) is one function and one line in ``STEPS``, between
``resolve_scopes`` (so it sees scoped arguments) and ``write_ahead`` (so a refused call costs no
backend request, no credential read and only its one record).

``Pipeline.bind`` turns a module's ``@tool`` method or ``DynamicTool`` into the FastMCP ``Tool``
that is registered, and that is the only way a module's code is ever called. No exception text from
inside a tool reaches the agent except a ``ToolCallError``'s or ``CredentialError``'s own short
message, scrubbed of secrets.
"""

from __future__ import annotations

import inspect
import logging
import secrets
import time
import types
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin

from fastmcp.exceptions import ToolError
from fastmcp.tools import Tool
from fastmcp.tools.base import ToolResult
from fastmcp.utilities.json_schema import dereference_refs
from pydantic.json_schema import SkipJsonSchema

from scoped_mcp import bound_tool
from scoped_mcp.audit import records
from scoped_mcp.audit.log import AuditLog, monotonic_ms
from scoped_mcp.bound_tool import present, tool_annotations, tool_signature
from scoped_mcp.errors import AuditUnavailable, CredentialError, ToolCallError
from scoped_mcp.identity import AgentContext
from scoped_mcp.limits.limiter import RateLimiter
from scoped_mcp.modules._base import DynamicTool, ToolMode, ToolModule, ToolSpec
from scoped_mcp.redaction import Redactor
from scoped_mcp.scoping import Scoped, ScopeStrategy

_log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 500
_EMPTY = inspect.Parameter.empty


class AuditedToolError(ToolError):
    """A tool call's refusal that the pipeline has already audited (the boundary passes it on)."""


@dataclass(frozen=True, slots=True)
class ScopeRule:
    """How one parameter is scoped: its strategy, applied to the value or to each of its items."""

    strategy: ScopeStrategy
    each: bool = False

    def apply(self, value: Any, agent_ctx: AgentContext) -> Any:
        if self.each and isinstance(value, list | tuple):
            return [self.strategy.apply(item, agent_ctx) for item in value]
        return self.strategy.apply(value, agent_ctx)


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered tool: its names and mode, how its arguments are scoped, and its body."""

    module_key: str
    tool_name: str
    mode: ToolMode
    agent_ctx: AgentContext
    body: Callable[[dict[str, Any]], Awaitable[Any]]
    scrub: Callable[[Any], Any]
    scopes: Mapping[str, ScopeRule] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Call:
    """One tool call as it passes the steps.

    ``arguments`` are what the agent sent (the audit digest is of these); ``body_arguments`` what
    the body receives (scoped). ``outcome``, ``error`` and ``error_type`` are what the audit record
    says; until the body has returned the call has not succeeded, so a cancellation (client
    cancel, shutdown), which no ``except Exception`` sees, is never audited as ``ok``. ``begun``:
    its ``call_start`` record is written, so the body may have run. ``approval``: the id of the
    approval request that let it through, named in both of its records.
    """

    binding: Binding
    arguments: dict[str, Any]
    body_arguments: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)
    outcome: str = "error"
    error: str | None = "cancelled before completion"
    error_type: str | None = "Cancelled"
    begun: bool = False
    exposed: set[str] = field(default_factory=set)
    approval: str | None = None
    _digest: dict[str, Any] | None = None

    @property
    def digest(self) -> dict[str, Any]:
        """The arguments' audit digest, computed once for both of the call's records."""
        if self._digest is None:
            self._digest = records.argument_digest(self.arguments)
        return self._digest


Proceed = Callable[[], Awaitable[Any]]
Step = Callable[["Pipeline", Call, Proceed], Awaitable[Any]]
ExposureHook = Callable[[frozenset[str], Binding], Awaitable[None]]
"""Called with the redaction owners found in what a call would have sent the agent."""


class ApprovalHold(typing.Protocol):
    """What ``await_approval`` needs of the approval gate (``approvals.gate.ApprovalGate``)."""

    async def hold(self, pipeline: Pipeline, call: Call, proceed: Proceed) -> Any: ...


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


async def write_audit(pipeline: Pipeline, call: Call, proceed: Proceed) -> Any:
    """Write the call's ``tool_call`` record when it ends, however it ends.

    A record that cannot be written turns the call into our short error: an agent never gets a
    result, or another error, that is not on record. A cancellation stays a cancellation.
    """
    try:
        result = await proceed()
    except AuditedToolError:
        _record_end(pipeline, call)
        raise
    except BaseException:
        with suppress(AuditedToolError):
            _record_end(pipeline, call)
        raise
    _record_end(pipeline, call)
    return result


def _record_end(pipeline: Pipeline, call: Call) -> None:
    binding = call.binding
    try:
        pipeline.audit.write(
            records.tool_call(
                module=binding.module_key,
                tool=binding.tool_name,
                mode=binding.mode,
                outcome=call.outcome,
                duration_ms=monotonic_ms(call.started),
                error=call.error,
                error_type=call.error_type,
                args=call.digest,
                approval=call.approval,
            )
        )
    except AuditUnavailable as exc:
        if not call.begun:
            raise AuditedToolError(exc.message) from None
        raise AuditedToolError(
            f"audit log unavailable ({exc.reason}): the call ran but its outcome is not on "
            "record, so its result is withheld"
        ) from None


async def map_errors(pipeline: Pipeline, call: Call, proceed: Proceed) -> Any:
    """Turn every exception into a short, scrubbed ``ToolError``; nothing else escapes."""
    redactor = pipeline.redactor

    def scrub(text: str) -> str:
        with redactor.watching(call.exposed):
            return redactor.scrub(text)

    try:
        result = await proceed()
    except ToolCallError as exc:
        call.outcome, call.error = exc.outcome, _short(scrub(exc.message))
        call.error_type = type(exc).__name__
        raise AuditedToolError(call.error) from None
    except CredentialError as exc:
        call.outcome, call.error = "error", _short(scrub(exc.message))
        call.error_type = type(exc).__name__
        raise AuditedToolError(call.error) from None
    except Exception as exc:  # noqa: BLE001 - the error boundary: nothing else may escape
        ref = secrets.token_hex(4)
        call.outcome, call.error = "error", f"internal error (ref {ref})"
        call.error_type = "InternalError"
        _log.error(
            "tool raised an unexpected exception",
            extra={"tool": call.binding.tool_name, "ref": ref, "exc_type": type(exc).__name__},
        )
        message = f"{call.binding.tool_name} failed: internal error (ref {ref})"
        raise AuditedToolError(message) from None
    call.outcome, call.error, call.error_type = "ok", None, None
    return result


async def scrub_result(pipeline: Pipeline, call: Call, proceed: Proceed) -> Any:
    """Remove every secret the broker has released from what the body returned."""
    result = await proceed()
    with pipeline.redactor.watching(call.exposed):
        return call.binding.scrub(result)


async def answer_exposure(pipeline: Pipeline, call: Call, proceed: Proceed) -> Any:
    """Report the released values a call's result or error held (scrubbed, so never sent)."""
    try:
        return await proceed()
    finally:
        if call.exposed and pipeline.on_exposed is not None:
            found, call.exposed = frozenset(call.exposed), set()
            await pipeline.on_exposed(found, call.binding)


async def resolve_scopes(pipeline: Pipeline, call: Call, proceed: Proceed) -> Any:
    """Pass every ``Scoped`` argument (an omitted one's default too) through its strategy."""
    binding = call.binding
    for name, rule in binding.scopes.items():
        value = call.body_arguments.get(name, binding.defaults.get(name))
        if value is not None:
            call.body_arguments[name] = rule.apply(value, binding.agent_ctx)
    return await proceed()


async def limit_rate(pipeline: Pipeline, call: Call, proceed: Proceed) -> Any:
    """Refuse a call over a rate limit (``limits/``): no record written ahead, nothing read."""
    await pipeline.limiter.admit(call.binding.module_key, call.binding.tool_name)
    return await proceed()


async def await_approval(pipeline: Pipeline, call: Call, proceed: Proceed) -> Any:
    """Hold a call an approval rule selects until a human decides (``approvals/gate.py``).

    Without ``approvals:`` in the manifest this is one attribute test.
    """
    if pipeline.approvals is None:
        return await proceed()
    return await pipeline.approvals.hold(pipeline, call, proceed)


async def write_ahead(pipeline: Pipeline, call: Call, proceed: Proceed) -> Any:
    """Write the call's ``call_start`` record; a call that cannot be recorded does not run."""
    binding = call.binding
    pipeline.audit.write(
        records.call_start(
            module=binding.module_key,
            tool=binding.tool_name,
            mode=binding.mode,
            args=call.digest,
            approval=call.approval,
        )
    )
    call.begun = True
    return await proceed()


async def run_body(pipeline: Pipeline, call: Call, proceed: Proceed) -> Any:
    """Run the module's code with the scoped arguments (the innermost step)."""
    return await call.binding.body(call.body_arguments)


STEPS: tuple[Step, ...] = (
    write_audit,
    answer_exposure,
    map_errors,
    scrub_result,
    resolve_scopes,
    limit_rate,
    await_approval,
    write_ahead,
    run_body,
)
"""Outermost first. New steps that must refuse before any backend work go before
``write_ahead``."""


class Pipeline:
    """Builds the registered tools of one server, each running every call through ``steps``."""

    def __init__(
        self,
        audit: AuditLog,
        redactor: Redactor,
        *,
        steps: Sequence[Step] = STEPS,
        limiter: RateLimiter | None = None,
        on_exposed: ExposureHook | None = None,
        approvals: ApprovalHold | None = None,
    ) -> None:
        if not steps or steps[-1] is not run_body:
            raise ValueError("a pipeline's last step must be run_body")
        self.audit = audit
        self.redactor = redactor
        self.limiter = limiter if limiter is not None else RateLimiter.unlimited()
        self.on_exposed = on_exposed
        self.steps = tuple(steps)
        self.approvals = approvals

    async def run(self, binding: Binding, arguments: dict[str, Any]) -> Any:
        """Run one call of ``binding`` through every step."""
        call = Call(binding, arguments, dict(arguments))

        def at(index: int) -> Proceed:
            async def proceed() -> Any:
                return await self.steps[index](self, call, at(index + 1))

            return proceed

        return await at(0)()

    def bind(
        self,
        module: ToolModule,
        tool: ToolSpec | DynamicTool,
        *,
        module_key: str,
        tool_name: str,
    ) -> Tool:
        """The FastMCP tool for one ``@tool`` method or ``DynamicTool`` of a module instance."""
        if isinstance(tool, DynamicTool):
            return self._bind_dynamic(module, tool, module_key=module_key, tool_name=tool_name)
        return self._bind_method(module, tool, module_key=module_key, tool_name=tool_name)

    def _bind_method(
        self, module: ToolModule, spec: ToolSpec, *, module_key: str, tool_name: str
    ) -> Tool:
        shared = bound_tool.template(type(module), spec, tool_name)
        bound = getattr(module, spec.method)
        params = list(shared.signature.parameters.values())
        returns = shared.hints.get("return", Any)

        async def body(arguments: dict[str, Any]) -> Any:
            result = bound(**arguments)
            return await result if inspect.isawaitable(result) else result

        binding = Binding(
            module_key=module_key,
            tool_name=tool_name,
            mode=spec.mode,
            agent_ctx=module.agent_ctx,
            body=body,
            scrub=self.redactor.result_scrubber(returns),
            scopes=scope_rules(module, params),
            defaults={p.name: p.default for p in params if p.default is not _EMPTY},
        )

        async def call_tool(arguments: dict[str, Any]) -> Any:
            return await self.run(binding, arguments)

        return shared.tool.bound_to(call_tool)

    def _bind_dynamic(
        self, module: ToolModule, dynamic: DynamicTool, *, module_key: str, tool_name: str
    ) -> Tool:
        binding = Binding(
            module_key=module_key,
            tool_name=tool_name,
            mode=dynamic.mode,
            agent_ctx=module.agent_ctx,
            body=dynamic.call,
            scrub=self.redactor.result_scrubber(Any),
        )

        async def call_tool(arguments: dict[str, Any]) -> Any:
            return await self.run(binding, dict(arguments))

        # A discovered definition is foreign text (an upstream's): scrubbed like a result.
        return PipelineTool(
            name=tool_name,
            description=self.redactor.scrub(dynamic.description),
            parameters=self.redactor.scrub_value(dict(dynamic.parameters)),
            annotations=tool_annotations(dynamic.mode),
            guarded=call_tool,
        )


def input_schema(cls: type[ToolModule], spec: ToolSpec) -> dict[str, Any]:
    """The ``inputSchema`` an MCP client is sent for a ``@tool`` method of ``cls``; no instance.

    Built the way ``Pipeline.bind`` builds it, with ``$ref``s inlined as the server's
    ``tools/list`` inlines them (FastMCP's ``dereference_schemas``), so ``scoped-mcp tools
    --json`` shows exactly the parameters and descriptions that an agent's client receives.
    """
    method, signature, hints = tool_signature(cls, spec)

    async def stub(**arguments: Any) -> Any:  # pragma: no cover - never called
        raise NotImplementedError

    present(stub, spec.name, method, signature, hints)
    return dereference_refs(dict(Tool.from_function(stub, name=spec.name).parameters))


class PipelineTool(Tool):
    """A FastMCP tool with an explicit JSON schema whose calls go through the pipeline."""

    guarded: SkipJsonSchema[Callable[[dict[str, Any]], Awaitable[Any]]]

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        result = self.convert_result(await self.guarded(arguments))
        if result.content and result.structured_content is not None:
            # Without an output schema the JSON text alone is the answer; sending the structured
            # copy as well would double what a large result costs the agent.
            return ToolResult(content=result.content, meta=result.meta)
        return result


def _scope_marker(annotation: Any) -> tuple[Scoped, bool] | None:
    """The ``Scoped`` marker of a parameter and whether it scopes each item of a list.

    Found also inside ``X | None`` and other unions, and beside or inside other ``Annotated``
    metadata (``Annotated[Annotated[str, Scoped("x")] | None, Field(description=...)]``). A bare
    ``Scoped`` (the class) is the same as ``Scoped()``: the module's own ``scoping``.
    """
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        inner, *metadata = get_args(annotation)
        each = _is_sequence(inner)
        for meta in metadata:
            if meta is Scoped:
                return Scoped(), each
            if isinstance(meta, Scoped):
                return meta, each
        return _scope_marker(inner)
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(annotation):
            found = _scope_marker(arg)
            if found is not None:
                return found
    return None


def _is_sequence(annotation: Any) -> bool:
    """``list[...]`` or ``tuple[...]``, also as a member of a union (``list[str] | None``)."""
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence(arg) for arg in get_args(annotation))
    return origin in (list, tuple)


def scope_rules(module: ToolModule, params: Sequence[inspect.Parameter]) -> dict[str, ScopeRule]:
    """Parameter name -> how it is scoped; a strategy name the module lacks is an error."""
    named = module.scope_strategies()
    found: dict[str, ScopeRule] = {}
    for param in params:
        marked = _scope_marker(param.annotation)
        if marked is None:
            continue
        marker, each = marked
        if marker.strategy is None:
            if module.scoping is None:
                raise TypeError(
                    f"{type(module).__name__} has Scoped parameters but no scoping strategy"
                )
            found[param.name] = ScopeRule(module.scoping, each)
        elif marker.strategy in named:
            found[param.name] = ScopeRule(named[marker.strategy], each)
        else:
            raise TypeError(
                f"{type(module).__name__}.{param.name}: no scope strategy named "
                f"{marker.strategy!r} (scope_strategies() has {sorted(named)})"
            )
    return found
