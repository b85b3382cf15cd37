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

from scoped_mcp.audit.boundary import mark_reached
from scoped_mcp.audit.log import AuditLog, monotonic_ms
from scoped_mcp.errors import CredentialError, ToolCallError
from scoped_mcp.modules._base import ToolModule, ToolSpec
from scoped_mcp.redaction import Redactor
from scoped_mcp.scoping import Scoped

_log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 500
# Built once: json.dumps with keyword arguments constructs a new encoder on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str, ensure_ascii=False)


def _is_scoped(annotation: Any) -> bool:
    """True for ``Annotated[str, Scoped]``, also inside ``X | None`` and other unions."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return any(meta is Scoped for meta in get_args(annotation)[1:])
    if origin in (typing.Union, types.UnionType):
        return any(_is_scoped(arg) for arg in get_args(annotation))
    return False


def argument_digest(arguments: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps of the arguments: names, sizes, and one SHA-256 over all values."""
    canonical = _CANONICAL.encode(arguments)
    shapes = {
        name: {"type": type(value).__name__, "len": len(value)}
        if isinstance(value, str | bytes | list | dict)
        else {"type": type(value).__name__}
        for name, value in arguments.items()
    }
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return {"sha256": digest, "shape": shapes}


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


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
    scoped = frozenset(p.name for p in params if _is_scoped(p.annotation))
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    if scoped and module.scoping is None:
        raise TypeError(f"{type(module).__name__} has Scoped parameters but no scoping strategy")
    agent_ctx = module.agent_ctx
    scrub_result = redactor.result_scrubber(hints.get("return", Any))

    async def call_tool(**arguments: Any) -> Any:
        mark_reached()
        started = time.perf_counter()
        # Until the body returns, the call has not succeeded: a cancellation (client cancel,
        # shutdown) is a BaseException no handler below sees, and must not be audited as "ok".
        outcome: str = "error"
        error: str | None = "cancelled before completion"
        try:
            call_args = dict(arguments)
            for name in scoped:
                value = call_args.get(name, defaults.get(name))
                if value is not None:
                    assert module.scoping is not None
                    call_args[name] = module.scoping.apply(value, agent_ctx)
            result = bound(**call_args)
            if inspect.isawaitable(result):
                result = await result
            scrubbed = scrub_result(result)
            outcome, error = "ok", None
            return scrubbed
        except ToolCallError as exc:
            outcome, error = exc.outcome, _short(redactor.scrub(exc.message))
            raise ToolError(error) from None
        except CredentialError as exc:
            outcome, error = "error", _short(redactor.scrub(exc.message))
            raise ToolError(error) from None
        except Exception as exc:  # noqa: BLE001 - the error boundary: nothing else may escape
            ref = secrets.token_hex(4)
            outcome, error = "error", f"internal error (ref {ref})"
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
                mode=spec.mode,
                outcome=outcome,
                duration_ms=monotonic_ms(started),
                error=error,
                args=argument_digest(arguments),
            )

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
