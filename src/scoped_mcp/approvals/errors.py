"""The refusals of the approval gate: short, for the agent, audited as ``denied``."""

from __future__ import annotations

from scoped_mcp.errors import ToolCallError


class ApprovalRefused(ToolCallError):
    """A held call that does not run: denied, expired, still pending, or not bindable."""

    outcome = "denied"


class DecisionRefused(Exception):
    """A decision (approve/deny) that cannot be applied; the text goes back to the approver."""
