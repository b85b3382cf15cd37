"""The composition root and the server's whole life: build, start, serve, stop once.

``build`` wires the identity, audit log, redactor, credential views, modules and call pipeline
together. ``run`` owns the life that follows: start the modules, write ``server_start``, serve
over stdio until stdin closes or a signal arrives, then stop exactly once (modules, leases,
telemetry) and write ``server_stop``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import anyio
from fastmcp import FastMCP
from fastmcp.tools import Tool

from scoped_mcp import __version__, registry
from scoped_mcp.audit import records
from scoped_mcp.audit.boundary import AuditBoundary
from scoped_mcp.audit.log import AuditLog, default_path, open_audit_log
from scoped_mcp.credentials.backends import Catalog, load_backends
from scoped_mcp.credentials.backends.interface import BackendContext, SecretBackend
from scoped_mcp.credentials.broker import CredentialBroker
from scoped_mcp.credentials.check import check_plans, require_usable
from scoped_mcp.credentials.exposure import ExposureResponder
from scoped_mcp.credentials.plan import KeyPlan, build_plans, schemes_used
from scoped_mcp.credentials.view import ModuleCredentials
from scoped_mcp.errors import ModuleLoadError, ScopedMCPError
from scoped_mcp.hardening import scrubbed_output, stdout_to_stderr
from scoped_mcp.identity import AgentContext
from scoped_mcp.limits.limiter import build_limiter
from scoped_mcp.limits.plan import limit_plans
from scoped_mcp.manifest import Manifest
from scoped_mcp.modules._base import DynamicTool, ToolModule
from scoped_mcp.pipeline import Pipeline
from scoped_mcp.redaction import Redactor
from scoped_mcp.stdio import StdioServer
from scoped_mcp.telemetry import settings as telemetry_settings
from scoped_mcp.telemetry.interface import Telemetry
from scoped_mcp.tool_control import SessionWatch, ToolControl

if TYPE_CHECKING:
    from scoped_mcp.approvals.gate import ApprovalGate
    from scoped_mcp.http.bind import HttpServing

_log = logging.getLogger(__name__)
SHUTDOWN_SECONDS = 5.0
SIGNAL_DRAIN_SECONDS = 3.0  # how long a signal stop waits for calls still running
STUCK_SECONDS = 5.0  # after that, how long before a stop that has not finished is forced


@dataclass
class Runtime:
    """Everything one agent's server consists of."""

    mcp: FastMCP
    audit: AuditLog
    redactor: Redactor
    broker: CredentialBroker
    pipeline: Pipeline
    modules: list[tuple[str, ToolModule]] = field(default_factory=list)
    names: registry.ToolNames = field(default_factory=registry.ToolNames)
    telemetry: Telemetry | None = None
    planned: dict[str, registry.PlannedModule] = field(default_factory=dict)
    sessions: SessionWatch = field(default_factory=SessionWatch)
    approvals: ApprovalGate | None = None

    @property
    def tool_names(self) -> list[str]:
        """Every registered tool name, in registration order."""
        return list(self.names)


def build(
    manifest: Manifest,
    agent_ctx: AgentContext,
    environ: Mapping[str, str],
    *,
    redactor: Redactor | None = None,
    telemetry: Telemetry | None = None,
    http: bool = False,
) -> Runtime:
    """Validate and assemble the server; ``ConfigError`` for anything the operator must fix.

    ``http``: the server will be reached over HTTP, so its bearer token is a planned credential
    and audit records carry the client address.
    """
    redactor = redactor or Redactor()
    planned = registry.plan(manifest)
    catalog = Catalog()
    plans = build_plans(manifest, planned, agent_ctx, catalog=catalog)
    if http:
        from scoped_mcp.http.token import token_plans

        plans = {**plans, **token_plans(manifest, agent_ctx, catalog)}
    plans = {**plans, **limit_plans(manifest.rate_limits, agent_ctx, catalog)}
    if manifest.approvals is not None:
        from scoped_mcp.approvals.build import channel_plans, check_startup

        check_startup(manifest, planned, environ, agent_ctx)
        plans = {**plans, **channel_plans(manifest, agent_ctx, catalog)}
    backends = load_backends(
        schemes_used(plans),
        manifest.credentials.settings,
        BackendContext(agent_ctx, environ),
        catalog=catalog,
    )
    try:
        return _assemble(
            manifest,
            agent_ctx,
            environ=environ,
            redactor=redactor,
            telemetry=telemetry,
            planned=planned,
            plans=plans,
            backends=backends,
            http=http,
        )
    except BaseException:
        # The preflight may already hold something that outlives us (Vault: the token of an
        # AppRole login, for which the secret-id was spent); a refused start-up gives it back.
        _close_backends(backends)
        raise


def _close_backends(backends: Mapping[str, SecretBackend]) -> None:
    for backend in {id(b): b for b in backends.values()}.values():
        try:
            backend.close()
        except Exception as exc:  # noqa: BLE001 - the refusal being raised matters more
            _log.warning("backend close failed", extra={"exc_type": type(exc).__name__})


def _assemble(
    manifest: Manifest,
    agent_ctx: AgentContext,
    *,
    environ: Mapping[str, str],
    redactor: Redactor,
    telemetry: Telemetry | None,
    planned: list[registry.PlannedModule],
    plans: dict[str, dict[str, KeyPlan]],
    backends: Mapping[str, SecretBackend],
    http: bool = False,
) -> Runtime:
    require_usable(check_plans(plans, backends))
    telemetry = telemetry or telemetry_settings.configure(
        manifest.telemetry, environ, agent_ctx, redactor
    )
    audit = _open_audit(manifest, agent_ctx, environ, redactor, telemetry, http=http)
    broker = CredentialBroker(
        plans=plans,
        backends=backends,
        ttl=manifest.credentials.ttl,
        redactor=redactor,
        on_event=lambda action, **fields: audit.write(records.credential(action, **fields)),
    )

    def credentials_for(key: str, cls: type[ToolModule]) -> ModuleCredentials:
        optional = frozenset(k for k, p in plans.get(key, {}).items() if not p.required)
        return ModuleCredentials(broker, key, optional)

    instances = registry.instantiate(planned, agent_ctx, credentials_for)
    approvals: ApprovalGate | None = None
    if manifest.approvals is not None:
        from scoped_mcp.approvals.build import build_gate

        approvals = build_gate(
            manifest, agent_ctx, environ, planned=planned, plans=plans, audit=audit,
            redactor=redactor, broker=broker,
        )  # fmt: skip
    limiter = build_limiter(manifest.rate_limits, agent_ctx, broker=broker)
    pipeline = Pipeline(
        audit,
        redactor,
        limiter=limiter,
        on_exposed=ExposureResponder(broker, audit),
        approvals=approvals,
    )
    names = registry.ToolNames()
    sessions = SessionWatch()
    mcp = FastMCP(
        name="scoped-mcp",
        version=__version__,
        instructions=f"Tools for agent {agent_ctx.agent_id} ({agent_ctx.agent_type}). "
        "Every resource is confined to this agent; every call is audited.",
        tools=_bind_tools(pipeline, instances, names),
        middleware=[AuditBoundary(audit), sessions],
        mask_error_details=True,
        on_duplicate="error",
    )
    return Runtime(
        mcp=mcp,
        audit=audit,
        redactor=redactor,
        broker=broker,
        modules=[(item.key, module) for item, module in instances],
        names=names,
        telemetry=telemetry,
        planned={item.key: item for item in planned},
        pipeline=pipeline,
        sessions=sessions,
        approvals=approvals,
    )


def _open_audit(
    manifest: Manifest,
    agent_ctx: AgentContext,
    environ: Mapping[str, str],
    redactor: Redactor,
    telemetry: Telemetry | None,
    *,
    http: bool = False,
) -> AuditLog:
    """The agent's audit log, its records also feeding telemetry when that is on."""
    extra = [telemetry.process] if telemetry is not None else []
    if http:
        from scoped_mcp.http.client import add_client_address

        extra.insert(0, add_client_address)
    return open_audit_log(
        manifest.audit.path or default_path(agent_ctx, dict(environ)),
        agent_ctx,
        redactor,
        max_bytes=manifest.audit.max_bytes,
        keep=manifest.audit.keep,
        extra=extra,
    )


def _bind_tools(
    pipeline: Pipeline,
    instances: list[tuple[registry.PlannedModule, ToolModule]],
    names: registry.ToolNames,
) -> list[Tool]:
    """The FastMCP tool of every planned ``@tool`` method, each claiming its name."""
    tools: list[Tool] = []
    for item, module in instances:
        for planned_tool in item.tools:
            names.claim(planned_tool.name, item.key)
            tools.append(
                pipeline.bind(
                    module, planned_tool.spec, module_key=item.key, tool_name=planned_tool.name
                )
            )
    return tools


async def start_modules(runtime: Runtime) -> None:
    """Run every module's ``startup``; a failure stops the server before it answers anything.

    A module's run-time tools (``dynamic_tools``) are registered right after its ``startup``,
    by mode and through the same call pipeline. On a failure the modules already started are
    shut down and the leases revoked, so nothing they started outlives the refusal.
    """
    started: list[tuple[str, ToolModule]] = []
    try:
        for key, module in runtime.modules:
            started.append((key, module))
            control = ToolControl(
                key=key, mcp=runtime.mcp, audit=runtime.audit, sessions=runtime.sessions
            )
            module.bind_server(control)
            try:
                await module.startup()
            except ScopedMCPError:
                raise
            except Exception as exc:  # noqa: BLE001 - a foreign error becomes one of ours
                # Its text may quote a credential the module was just given: type only, as for
                # a module that fails to initialise.
                raise ModuleLoadError(
                    f"modules.{key}: startup failed ({type(exc).__name__})"
                ) from None
            for dynamic in module.dynamic_tools():
                name = _add_dynamic(runtime, key, module, dynamic)
                if name is not None:
                    control.registered[dynamic.name] = name
    except BaseException:
        # Only the modules that started are stopped; telemetry is left as a refused start leaves it.
        partial = replace(runtime, modules=started, telemetry=None)
        await stop_modules(partial)
        raise


def _add_dynamic(
    runtime: Runtime, key: str, module: ToolModule, dynamic: DynamicTool
) -> str | None:
    """Register one run-time tool if the module's mode allows it; the name it got."""
    name = registry.admit_dynamic(runtime.names, runtime.planned[key], dynamic)
    if name is None:
        return None
    runtime.mcp.add_tool(runtime.pipeline.bind(module, dynamic, module_key=key, tool_name=name))
    return name


async def stop_modules(runtime: Runtime) -> None:
    """Run every module's ``shutdown``, then revoke every lease; each step bounded."""
    for key, module in reversed(runtime.modules):
        with anyio.move_on_after(SHUTDOWN_SECONDS, shield=True):
            try:
                await module.shutdown()
            except Exception as exc:  # noqa: BLE001 - one module must not stop the others
                _log.warning(
                    "module shutdown failed", extra={"module": key, "exc_type": type(exc).__name__}
                )
    await runtime.pipeline.limiter.aclose()
    await runtime.broker.close()
    if runtime.telemetry is not None:
        runtime.telemetry.shutdown()


async def serve_stdio(
    runtime: Runtime, *, on_stuck: Callable[[str], Awaitable[None]]
) -> str | None:
    """Serve MCP on stdio until stdin closes or SIGTERM/SIGINT; the signal's name, or ``None``.

    A signal stops reading at once; every call that completed is answered, calls still running
    get ``SIGNAL_DRAIN_SECONDS`` to finish, and the rest are answered with an error as they are
    cancelled. Should serving still not end (a call stuck in a thread ignores cancellation),
    ``on_stuck(name)`` runs and must end the process.
    """
    transport = StdioServer(runtime.mcp)
    stopped_by: list[str] = []
    async with anyio.create_task_group() as group:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    if not stopped_by:
                        _log.info("stopping on signal", extra={"signal": signum.name})
                        stopped_by.append(signum.name)
                        transport.stop(drain_seconds=SIGNAL_DRAIN_SECONDS)
                        group.start_soon(give_up_after, signum.name)

        async def give_up_after(name: str) -> None:
            await anyio.sleep(SIGNAL_DRAIN_SECONDS + STUCK_SECONDS)
            await on_stuck(name)

        group.start_soon(watch_signals)
        async with anyio.create_task_group() as inner:
            inner.start_soon(runtime.broker.maintain)
            if runtime.approvals is not None:
                await inner.start(runtime.approvals.serve)
            await transport.serve()
            inner.cancel_scope.cancel()
        group.cancel_scope.cancel()
    return stopped_by[0] if stopped_by else None


class _Life:
    """Stops the server exactly once, whichever of stdin, a signal or an error comes first."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._stopped = False

    async def stop(self, reason: str) -> None:
        if self._stopped:
            return
        self._stopped = True
        runtime = self._runtime
        with anyio.CancelScope(shield=True), stdout_to_stderr():
            await stop_modules(runtime)
        runtime.audit.write(records.server_stop(reason=reason))
        runtime.audit.close()
        _log.info("stopped", extra={"reason": reason})

    async def stop_stuck(self, name: str) -> None:
        """Serving did not end after a signal: stop anyway and end the process (exit 0).

        A call blocked in a worker thread cannot be cancelled, and the interpreter would wait
        for that thread at exit; the host asked for a stop, so the process ends here.
        """
        _log.warning("serving did not end after the signal", extra={"signal": name})
        await self.stop(f"signal {name}")
        sys.stderr.flush()
        os._exit(0)


async def serve_http(runtime: Runtime, http: HttpServing) -> str:
    """Serve MCP over streamable HTTP until SIGTERM or SIGINT; returns why it stopped."""
    from scoped_mcp.http.serve import serve_http as serve_over_http

    return await serve_over_http(runtime, bind=http.bind, spec=http.spec, agent_id=http.agent_id)


async def run(
    manifest: Manifest,
    agent_ctx: AgentContext,
    environ: Mapping[str, str],
    *,
    redactor: Redactor,
    http: HttpServing | None = None,
) -> None:
    """The server's whole life: build, start, ``server_start``, serve, stop once, ``server_stop``.

    Served over stdio, or over HTTP when ``http`` says where. Nothing a module prints while
    starting or stopping reaches stdout, which carries MCP only; what it prints while starting
    reaches stderr scrubbed of every released secret.
    """
    with scrubbed_output(redactor.scrub):
        runtime = build(manifest, agent_ctx, environ, redactor=redactor, http=http is not None)
        await start_modules(runtime)
    runtime.audit.write(
        records.server_start(manifest=str(manifest.source_path), tools=runtime.tool_names)
    )
    _log.info("serving", extra={"agent_id": agent_ctx.agent_id, "tools": len(runtime.tool_names)})
    life = _Life(runtime)
    if http is not None:
        reason = "error"
        try:
            reason = await serve_http(runtime, http)
        finally:
            await life.stop(reason)
        return
    reason = "stdin closed"
    try:
        signal_name = await serve_stdio(runtime, on_stuck=life.stop_stuck)
        if signal_name is not None:
            reason = f"signal {signal_name}"
    finally:
        await life.stop(reason)
