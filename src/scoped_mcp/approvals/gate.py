"""The approval gate: the pipeline step's body, and where every decision is applied.

A call a rule selects is bound to ``{agent_id, tool, argument digest}``:

* an approved, unspent request for it within its lifetime: the call spends it and runs;
* a pending one: the call waits on it (no second request);
* a denied one: the call is refused with the denial's reason;
* none: a request is made, audited (``approval_requested``), sent to the rule's channels, and the
  call waits up to ``wait`` seconds, sending MCP progress notifications meanwhile.

Not decided within ``wait``: the agent is told to repeat the identical call. An approved call runs
inside the broker's per-call lease scope, so its module's credentials are read only now, and a
dynamic one is revoked when the call returns. Every decision is written to the audit log before it
takes effect: a decision that cannot be recorded is not applied.
"""

from __future__ import annotations

import json
import logging
import math
import pwd
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from scoped_mcp.approvals.errors import ApprovalRefused, DecisionRefused
from scoped_mcp.approvals.progress import report_progress
from scoped_mcp.approvals.rules import EffectiveRule, Rules
from scoped_mcp.approvals.store import MAX_OPEN, Binding, Request, Store
from scoped_mcp.audit import records
from scoped_mcp.errors import AuditUnavailable

if TYPE_CHECKING:
    from scoped_mcp.audit.log import AuditLog
    from scoped_mcp.credentials.broker import CredentialBroker
    from scoped_mcp.pipeline import Call, Pipeline, Proceed
    from scoped_mcp.redaction import Redactor

_log = logging.getLogger(__name__)
MAX_RENDERING_CHARS = 1500
NOTIFY_SECONDS = 15.0
SWEEP_SECONDS = 1.0


class Channel(Protocol):
    """A way to tell humans of a request and, for some, to hear their answer."""

    name: str

    async def notify(self, request: Request) -> None:
        """Tell of one request; raise on failure (the gate logs it and carries on)."""
        ...

    async def serve(self, gate: ApprovalGate) -> None:
        """Listen for decisions until cancelled (return at once if the channel only tells)."""
        ...

    async def close(self) -> None: ...


def render_arguments(arguments: dict[str, Any], redactor: Redactor) -> str:
    """The arguments as one line of JSON for people, every released secret scrubbed, capped."""
    try:
        text = json.dumps(arguments, sort_keys=True, ensure_ascii=True, default=str)
    except (TypeError, ValueError, RecursionError):
        text = "(arguments cannot be rendered)"
    text = redactor.scrub(text)
    if len(text) > MAX_RENDERING_CHARS:
        text = text[: MAX_RENDERING_CHARS - 1] + "…"
    return text


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


class ApprovalGate:
    """Holds calls, keeps their requests, applies decisions; one per server."""

    def __init__(
        self,
        *,
        rules: Rules,
        store: Store,
        audit: AuditLog,
        redactor: Redactor,
        broker: CredentialBroker,
        channels: Sequence[Channel],
        progress_seconds: float,
        agent_id: str,
        agent_type: str,
        environ: Mapping[str, str],
    ) -> None:
        self.rules = rules
        self.store = store
        self.audit = audit
        self.redactor = redactor
        self.broker = broker
        self.channels = {channel.name: channel for channel in channels}
        self.progress_seconds = progress_seconds
        self.agent_id = agent_id
        self.agent_type = agent_type
        # Only where the socket goes: the environment may hold credentials (env: source).
        self.environ = {k: v for k, v in environ.items() if k == "XDG_RUNTIME_DIR"}

    def __repr__(self) -> str:
        return f"ApprovalGate(channels={sorted(self.channels)}, {self.store!r})"

    # -- the pipeline step ---------------------------------------------------------------------

    async def hold(self, pipeline: Pipeline, call: Call, proceed: Proceed) -> Any:
        """Run the call if it is (or becomes) approved; otherwise refuse it, saying why."""
        binding = call.binding
        rule = self.rules.match(
            module=binding.module_key, tool=binding.tool_name, mode=binding.mode
        )
        if rule is None:
            return await proceed()
        digest = call.digest.get("sha256")
        if not isinstance(digest, str):
            raise ApprovalRefused(
                f"{binding.tool_name} needs approval, and its arguments cannot be digested to "
                "bind one: call refused"
            )
        key = Binding(binding.agent_ctx.agent_id, binding.tool_name, digest)
        self.expire_due()
        request = self.store.find(key)
        if request is None:
            request = await self._request(call, key, rule)
        call.approval = request.id
        if request.state == "pending":
            await self._wait(request, rule)
        self._conclude(request)
        async with self.broker.call_leases():
            return await proceed()

    async def _request(self, call: Call, key: Binding, rule: EffectiveRule) -> Request:
        if self.store.open_count() >= MAX_OPEN:
            raise ApprovalRefused(
                f"{MAX_OPEN} requests already wait for approval on this server: call refused"
            )
        binding = call.binding
        request = self.store.create(
            key,
            module=binding.module_key,
            mode=binding.mode,
            args=call.digest,
            rendering=render_arguments(call.arguments, self.redactor),
            rule=rule,
        )
        told, failed = await self._notify(request)
        try:
            self.audit.write(
                records.approval_requested(
                    approval=request.id,
                    module=binding.module_key,
                    tool=binding.tool_name,
                    args=call.digest,
                    expires_in=rule.lifetime,
                    channels=told,
                    failed=failed,
                )
            )
        except AuditUnavailable:
            request.settle("expired", self.store.now())
            raise
        return request

    async def _notify(self, request: Request) -> tuple[list[str], list[str]]:
        told, failed = ["cli"], []
        for name in request.rule.notify:
            channel = self.channels.get(name)
            if channel is None:
                continue
            try:
                with anyio.fail_after(NOTIFY_SECONDS):
                    await channel.notify(request)
                told.append(name)
            except Exception as exc:  # noqa: BLE001 - one channel failing must not stop the request
                failed.append(name)
                _log.warning(
                    "approval channel failed",
                    extra={"channel": name, "exc_type": type(exc).__name__},
                )
        return told, failed

    async def _wait(self, request: Request, rule: EffectiveRule) -> None:
        """Wait for a decision, up to ``wait`` seconds (and never past the expiry)."""
        deadline = self.store.now() + rule.wait
        total = max(1, math.ceil(rule.wait / self.progress_seconds))
        step = 0
        while request.state == "pending":
            now = self.store.now()
            remaining = min(deadline, request.expires_at) - now
            if remaining <= 0:
                break
            with anyio.move_on_after(min(remaining, self.progress_seconds)):
                await request.changed.wait()
            if request.state == "pending":
                step += 1
                message = f"waiting for approval {request.id} ({request.binding.tool})"
                await report_progress(min(step, total), total, message)
        if request.state == "pending" and self.store.now() >= request.expires_at:
            self._expire(request)

    def _conclude(self, request: Request) -> None:
        """Spend the approval, or raise the refusal that says what became of the request."""
        tool = request.binding.tool
        if request.state == "approved" and self.store.spend(request):
            return
        if request.state == "denied":
            why = f": {request.reason}" if request.reason else ""
            raise ApprovalRefused(f"approval {request.id} for {tool} was denied{why}")
        if request.state == "expired":
            raise ApprovalRefused(
                f"approval {request.id} for {tool} expired undecided; call again for a new one"
            )
        if request.state == "spent":
            raise ApprovalRefused(
                f"approval {request.id} was used by another identical call; call again for a "
                "new one"
            )
        raise ApprovalRefused(
            f"pending approval {request.id}; repeat the same call after it is approved"
        )

    # -- decisions -----------------------------------------------------------------------------

    def decide(
        self,
        request_id: str,
        decision: str,
        *,
        channel: str,
        approver: str,
        reason: str | None = None,
    ) -> Request:
        """Apply ``approve`` or ``deny`` from ``approver`` on ``channel``; ``DecisionRefused``
        says why not (unknown id, not this approver's to decide, already decided, expired)."""
        self.expire_due()
        request = self.store.get(request_id)
        if request is None:
            raise DecisionRefused(f"no request {request_id} on this server")
        approvers = request.rule.approvers
        allowed = approvers.cli if channel == "cli" else approver in approvers.matrix
        if not allowed:
            raise DecisionRefused(
                f"request {request_id} cannot be decided by {approver} on {channel}"
            )
        if request.state != "pending":
            raise DecisionRefused(f"request {request_id} is {request.state}, not pending")
        state = "approved" if decision == "approve" else "denied"
        try:
            self.audit.write(
                records.approval_decided(
                    state,
                    approval=request.id,
                    tool=request.binding.tool,
                    channel=channel,
                    approver=approver,
                    reason=reason,
                )
            )
        except AuditUnavailable as exc:
            raise DecisionRefused(f"not applied: {exc.message}") from None
        request.channel, request.approver, request.reason = channel, approver, reason
        if state == "approved":
            request.state = "approved"
            request.changed.set()
        else:
            request.settle("denied", self.store.now())
        return request

    def expire_due(self) -> None:
        """Mark every request past its expiry as ``expired`` (audited once each)."""
        for request in self.store.due_to_expire():
            self._expire(request)

    def _expire(self, request: Request) -> None:
        request.settle("expired", self.store.now())
        try:
            self.audit.write(
                records.approval_decided(
                    "expired",
                    approval=request.id,
                    tool=request.binding.tool,
                    channel=None,
                    approver=None,
                    reason="lifetime passed undecided"
                    if request.approver is None
                    else "approved but not used within its lifetime",
                )
            )
        except AuditUnavailable:
            _log.warning("expiry of an approval could not be recorded", extra={"id": request.id})

    # -- background ----------------------------------------------------------------------------

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the control socket, the listening channels and the expiry sweep until cancelled."""
        from scoped_mcp.approvals.control.server import ControlServer

        control = ControlServer(self, environ=self.environ)
        try:
            async with anyio.create_task_group() as group:
                await group.start(control.serve)
                for channel in self.channels.values():
                    group.start_soon(channel.serve, self)
                group.start_soon(self._sweep)
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True):
                for channel in self.channels.values():
                    try:
                        await channel.close()
                    except Exception as exc:  # noqa: BLE001 - closing must go on
                        _log.warning(
                            "approval channel close failed", extra={"exc_type": type(exc).__name__}
                        )

    async def _sweep(self) -> None:
        while True:
            await anyio.sleep(SWEEP_SECONDS)
            self.expire_due()
