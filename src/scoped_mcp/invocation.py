"""The call pipeline every tool passes through: scope, run, redact, audit, error boundary.

``wrap_tool`` turns a module's bound method into the function FastMCP registers. The wrapper has
the method's signature (minus ``self``) so FastMCP builds the same schema, and it is the only way a
module's code is ever called. No exception text from inside a tool reaches the agent except a
``ToolCallError``'s own short message, scrubbed of secrets.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import secrets
import time
import types
import typing
from collections.abc import Awaitable, Callable
from typing import Any, get_args, get_origin

from fastmcp.exceptions import ToolError
from fastmcp.tools import Tool
from fastmcp.tools.base import ToolResult
from mcp.types import ToolAnnotations
from pydantic.json_schema import SkipJsonSchema

from scoped_mcp.audit.boundary import mark_reached
from scoped_mcp.audit.log import AuditLog, monotonic_ms
from scoped_mcp.errors import CredentialError, ToolCallError
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import DynamicTool, ToolModule, ToolSpec
from scoped_mcp.redaction import Redactor
from scoped_mcp.scoping import Scoped, ScopeStrategy

_log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 500
# Built once: json.dumps with keyword arguments constructs a new encoder on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str, ensure_ascii=False)


def _scope_marker(annotation: Any) -> Scoped | None:
    """The ``Scoped`` marker of a parameter, also inside ``X | None`` and other unions.

    A bare ``Scoped`` (the class) is the same as ``Scoped()``: the module's own ``scoping``.
    """
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        for meta in get_args(annotation)[1:]:
            if meta is Scoped:
                return Scoped()
            if isinstance(meta, Scoped):
                return meta
        return None
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(annotation):
            marker = _scope_marker(arg)
            if marker is not None:
                return marker
    return None


def _strategies(module: ToolModule, params: list[inspect.Parameter]) -> dict[str, ScopeStrategy]:
    """Parameter name -> the strategy that scopes it; a strategy the module lacks is an error."""
    named = module.scope_strategies()
    found: dict[str, ScopeStrategy] = {}
    for param in params:
        marker = _scope_marker(param.annotation)
        if marker is None:
            continue
        if marker.strategy is None:
            if module.scoping is None:
                raise TypeError(
                    f"{type(module).__name__} has Scoped parameters but no scoping strategy"
                )
            found[param.name] = module.scoping
        elif marker.strategy in named:
            found[param.name] = named[marker.strategy]
        else:
            raise TypeError(
                f"{type(module).__name__}.{param.name}: no scope strategy named "
                f"{marker.strategy!r} (scope_strategies() has {sorted(named)})"
            )
    return found


def _apply_scope(strategy: ScopeStrategy, value: Any, agent_ctx: AgentContext) -> Any:
    """Scope one argument: a string, or every element of a list or tuple of strings."""
    if isinstance(value, list | tuple):
        return [strategy.apply(item, agent_ctx) for item in value]
    return strategy.apply(value, agent_ctx)


def argument_digest(arguments: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps of the arguments: names, sizes, and one SHA-256 over all values.

    It runs in the pipeline's ``finally``, so it must not fail: arguments the encoder cannot
    render (an integer past Python's digit limit) get ``sha256: null`` rather than no record.
    """
    try:
        canonical: str | None = _CANONICAL.encode(arguments)
    except (ValueError, TypeError, RecursionError):
        canonical = None
    shapes = {
        name: {"type": type(value).__name__, "len": len(value)}
        if isinstance(value, str | bytes | list | dict)
        else {"type": type(value).__name__}
        for name, value in arguments.items()
    }
    if canonical is None:
        return {"sha256": None, "shape": shapes}
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return {"sha256": digest, "shape": shapes}


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


Guarded = Callable[[Callable[[], Awaitable[Any]], dict[str, Any]], Awaitable[Any]]


def _pipeline(
    *,
    module_key: str,
    tool_name: str,
    mode: str,
    audit: AuditLog,
    redactor: Redactor,
    return_type: Any,
) -> Guarded:
    """The audit, redaction and error boundary around one tool's body (shared by every kind)."""
    scrub_result = redactor.result_scrubber(return_type)

    async def guarded(body: Callable[[], Awaitable[Any]], arguments: dict[str, Any]) -> Any:
        mark_reached()
        started = time.perf_counter()
        # Until the body returns, the call has not succeeded: a cancellation (client cancel,
        # shutdown) is a BaseException no handler below sees, and must not be audited as "ok".
        outcome: str = "error"
        error: str | None = "cancelled before completion"
        error_type: str | None = "Cancelled"
        try:
            scrubbed = scrub_result(await body())
            outcome, error, error_type = "ok", None, None
            return scrubbed
        except ToolCallError as exc:
            outcome, error = exc.outcome, _short(redactor.scrub(exc.message))
            error_type = type(exc).__name__
            raise ToolError(error) from None
        except CredentialError as exc:
            outcome, error = "error", _short(redactor.scrub(exc.message))
            error_type = type(exc).__name__
            raise ToolError(error) from None
        except Exception as exc:  # noqa: BLE001 - the error boundary: nothing else may escape
            ref = secrets.token_hex(4)
            outcome, error, error_type = "error", f"internal error (ref {ref})", "InternalError"
            _log.error(
                "tool raised an unexpected exception",
                extra={"tool": tool_name, "ref": ref, "exc_type": type(exc).__name__},
            )
            raise ToolError(f"{tool_name} failed: internal error (ref {ref})") from None
        finally:
            audit.record(
                "tool_call",
                module=module_key,
                tool=tool_name,
                mode=mode,
                outcome=outcome,
                duration_ms=monotonic_ms(started),
                error=error,
                error_type=error_type,
                args=argument_digest(arguments),
            )

    return guarded


def wrap_tool(
    module: ToolModule,
    spec: ToolSpec,
    *,
    module_key: str,
    tool_name: str,
    audit: AuditLog,
    redactor: Redactor,
) -> Callable[..., Awaitable[Any]]:
    """Build the registered function for one tool of one module instance."""
    method = getattr(type(module), spec.method)
    bound = getattr(module, spec.method)
    hints = typing.get_type_hints(method, include_extras=True)
    signature = inspect.signature(method)
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in list(signature.parameters.values())[1:]
    ]
    scoped = _strategies(module, params)
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    agent_ctx = module.agent_ctx
    guarded = _pipeline(
        module_key=module_key,
        tool_name=tool_name,
        mode=spec.mode,
        audit=audit,
        redactor=redactor,
        return_type=hints.get("return", Any),
    )

    async def call_tool(**arguments: Any) -> Any:
        async def body() -> Any:
            call_args = dict(arguments)
            for name, strategy in scoped.items():
                value = call_args.get(name, defaults.get(name))
                if value is not None:
                    call_args[name] = _apply_scope(strategy, value, agent_ctx)
            result = bound(**call_args)
            if inspect.isawaitable(result):
                result = await result
            return result

        return await guarded(body, arguments)

    call_tool.__name__ = tool_name
    call_tool.__qualname__ = tool_name
    call_tool.__doc__ = inspect.getdoc(method)
    call_tool.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=params, return_annotation=hints.get("return", inspect.Signature.empty)
    )
    call_tool.__annotations__ = {p.name: p.annotation for p in params}
    if "return" in hints:
        call_tool.__annotations__["return"] = hints["return"]
    return call_tool


class PipelineTool(Tool):
    """A FastMCP tool with an explicit JSON schema whose body is a guarded ``DynamicTool``."""

    guarded: SkipJsonSchema[Callable[[dict[str, Any]], Awaitable[Any]]]

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        return self.convert_result(await self.guarded(arguments))


def wrap_dynamic(
    dynamic: DynamicTool,
    *,
    module_key: str,
    tool_name: str,
    audit: AuditLog,
    redactor: Redactor,
) -> PipelineTool:
    """The registered tool for a module's ``DynamicTool``: the same pipeline as ``wrap_tool``."""
    guarded = _pipeline(
        module_key=module_key,
        tool_name=tool_name,
        mode=dynamic.mode,
        audit=audit,
        redactor=redactor,
        return_type=Any,
    )

    async def call_tool(arguments: dict[str, Any]) -> Any:
        return await guarded(lambda: dynamic.call(dict(arguments)), arguments)

    return PipelineTool(
        name=tool_name,
        description=dynamic.description,
        parameters=dict(dynamic.parameters),
        annotations=ToolAnnotations(read_only_hint=dynamic.mode == "read", open_world_hint=False),
        guarded=call_tool,
    )
