"""The ntfy channel: one push notification per request, through the ntfy module's own client.

The module class (``modules/ntfy.py``) does the work: its topic rules, its text limits, its
``CredentialAuth`` (NTFY_URL and the optional NTFY_TOKEN come from the broker under
``approvals.ntfy``). The notification carries the request id, the tool, the scrubbed arguments and
the commands that approve or deny it; never a credential.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scoped_mcp.approvals.channels import message
from scoped_mcp.approvals.config import NtfyChannel as NtfySpec
from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules.ntfy import MAX_MESSAGE_BYTES, NtfyConfig, NtfyModule

if TYPE_CHECKING:
    from scoped_mcp.approvals.gate import ApprovalGate
    from scoped_mcp.approvals.store import Request


class NtfyChannel:
    """Tells of each request on the configured topic."""

    name = "ntfy"

    def __init__(
        self, spec: NtfySpec, agent_ctx: AgentContext, credentials: CredentialView
    ) -> None:
        config = NtfyConfig.model_validate(
            {"topic": spec.topic, "max_priority": spec.priority, "timeout_s": spec.timeout_s}
        )
        self._module = NtfyModule(agent_ctx, credentials, config)
        self._priority = spec.priority
        self._open = False

    def __repr__(self) -> str:
        return "NtfyChannel()"

    async def notify(self, request: Request) -> None:
        if not self._open:
            await self._module.startup()
            self._open = True
        text = message(
            request.id,
            request.binding.tool,
            request.binding.agent_id,
            request.rendering,
            request.rule.lifetime,
        )
        encoded = text.encode("utf-8")[:MAX_MESSAGE_BYTES]
        await self._module.send(
            message=encoded.decode("utf-8", "ignore"),
            title=f"Approval {request.id}: {request.binding.tool}",
            priority=self._priority,
            tags=["lock"],
        )

    async def serve(self, gate: ApprovalGate) -> None:
        """ntfy only tells: decisions come through the CLI or Matrix."""
        return None

    async def close(self) -> None:
        if self._open:
            await self._module.shutdown()
            self._open = False
