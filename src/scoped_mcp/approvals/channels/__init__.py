"""The channels that tell humans of a request: ``ntfy.py`` (tells), ``matrix.py`` (tells and
listens). The CLI is the control socket (``approvals/control``), always on."""

from __future__ import annotations

MODULE_PREFIX = "approvals."
"""Broker plans of a channel's keys sit under ``approvals.ntfy`` / ``approvals.matrix``, names no
module can have (module keys have no dot)."""


def plan_module(channel: str) -> str:
    """The broker's module key for one channel's credentials."""
    return MODULE_PREFIX + channel


def message(request_id: str, tool: str, agent_id: str, rendering: str, expires_in: float) -> str:
    """The text of a request as a person reads it, with the commands that decide it."""
    return (
        f"Agent {agent_id} asks to run {tool}\n"
        f"arguments: {rendering}\n"
        f"request {request_id}, valid {expires_in:.0f} s\n"
        f"approve: scoped-mcp approvals approve {request_id}\n"
        f"deny:    scoped-mcp approvals deny {request_id} --reason '...'"
    )
