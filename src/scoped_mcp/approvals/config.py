"""``approvals:`` in the manifest: which tools wait for a human, how long, and who may decide.

Validated in full when the manifest loads: a rule without a selector, a channel a rule names but
the block does not configure, a Matrix approver without a Matrix channel, a lifetime shorter than
the wait, each stops start-up naming the field. Whether a rule selects any tool of the manifest is
checked at build time (``approvals/build.py``), where the tools are known.

This file imports pydantic only: it is all of the approvals package a manifest without the block
loads.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ChannelName = Literal["cli", "ntfy", "matrix"]
MATRIX_USER = re.compile(r"@[a-z0-9._=/+-]{1,200}:[A-Za-z0-9.:\[\]-]{1,255}")
MATRIX_ROOM_ID = re.compile(r"![^\s:]{1,200}:[A-Za-z0-9.:\[\]-]{1,255}")
TOOL_GLOB = re.compile(r"[a-z0-9_*?\[\]-]{1,80}")
TOPIC_TEMPLATE = re.compile(r"(?:[-_A-Za-z0-9]|\{agent_id\}|\{agent_type\})+")
CHANNEL_KEYS = {
    "ntfy": ("NTFY_URL", "NTFY_TOKEN"),
    "matrix": ("MATRIX_HOMESERVER", "MATRIX_ACCESS_TOKEN"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ChannelBase(_Strict):
    credentials: dict[str, str] = Field(
        default_factory=dict,
        description="Secret references for this channel's keys (as a module's credentials: "
        "block); a key not named here comes from credentials.keys, then credentials.source.",
    )
    timeout_s: float = Field(
        default=10, gt=0, le=60, description="Time limit of one request to the service."
    )

    @model_validator(mode="after")
    def _known_keys(self) -> _ChannelBase:
        allowed = CHANNEL_KEYS[self._name()]
        for key in self.credentials:
            if key not in allowed:
                raise ValueError(f"credentials.{key}: not a key of this channel ({allowed})")
        return self

    def _name(self) -> str:
        raise NotImplementedError


class NtfyChannel(_ChannelBase):
    """``approvals.channels.ntfy``: one push notification per request (NTFY_URL, NTFY_TOKEN)."""

    topic: str = Field(
        description="Topic template for the requests; {agent_id} and {agent_type} expand. Must "
        "contain {agent_id}."
    )
    priority: Literal["min", "low", "default", "high", "urgent"] = Field(
        default="high", description="Priority of the notifications."
    )

    def _name(self) -> str:
        return "ntfy"

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if "{agent_id}" not in value or not TOPIC_TEMPLATE.fullmatch(value):
            raise ValueError(
                "must contain {agent_id} and only letters, digits, '-', '_', {agent_type}"
            )
        return value


class MatrixChannel(_ChannelBase):
    """``approvals.channels.matrix``: requests posted to a room, answered there
    (MATRIX_HOMESERVER, MATRIX_ACCESS_TOKEN)."""

    room: str = Field(
        description="Room id (!id:server, not an alias, so it cannot be moved) the requests "
        "are posted to and the answers read from."
    )
    poll_seconds: float = Field(
        default=10, ge=1, le=60, description="Long-poll timeout of one /sync request."
    )
    max_response_bytes: int = Field(
        default=1024 * 1024,
        ge=4096,
        le=16 * 1024 * 1024,
        description="Largest /sync answer read; a larger one is dropped.",
    )

    def _name(self) -> str:
        return "matrix"

    @field_validator("room")
    @classmethod
    def _room(cls, value: str) -> str:
        if not MATRIX_ROOM_ID.fullmatch(value):
            raise ValueError("must be a room id like !abc123:example.org (aliases are refused)")
        return value


class Channels(_Strict):
    """``approvals.channels``: the CLI (control socket) is always on; ntfy and Matrix opt in."""

    ntfy: NtfyChannel | None = None
    matrix: MatrixChannel | None = None

    def configured(self) -> set[str]:
        """The channel names that can be used: cli and every configured block."""
        return {"cli"} | {name for name in ("ntfy", "matrix") if getattr(self, name)}


class Approvers(_Strict):
    """Who may decide: the server's own OS user through the CLI, and listed Matrix users."""

    cli: bool = Field(
        default=True,
        description="Whether the server's OS user may approve with scoped-mcp approvals "
        "(false: only the listed Matrix users, e.g. when the agent has a shell as that user).",
    )
    matrix: list[str] = Field(
        default_factory=list,
        description="Matrix user ids (@user:server) whose 'approve ID' / 'deny ID' count.",
    )

    @field_validator("matrix")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        for user in value:
            if not MATRIX_USER.fullmatch(user):
                raise ValueError(f"{user!r} is not a Matrix user id like @alice:example.org")
        return value


class Rule(_Strict):
    """One rule: the tools it selects (any selector matching is enough) and how they wait."""

    tools: list[str] = Field(
        default_factory=list,
        description="Tool names or globs over {module}_{tool}, e.g. filesystem_delete_* .",
    )
    modules: list[str] = Field(
        default_factory=list, description="Module names whose every tool is selected."
    )
    mode: Literal["read", "write"] | None = Field(
        default=None, description="write selects every write tool (read: every read tool)."
    )
    wait: float | None = Field(
        default=None, ge=0, le=3600, description="Seconds a call is held (default: approvals.wait)."
    )
    lifetime: float | None = Field(
        default=None,
        gt=0,
        le=86400,
        description="Seconds a request stays valid, pending or approved (default: "
        "approvals.lifetime).",
    )
    notify: list[ChannelName] | None = Field(
        default=None, description="Channels told of a request (default: every configured one)."
    )
    approvers: Approvers | None = Field(
        default=None, description="Who may decide (default: approvals.approvers)."
    )

    @field_validator("tools")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        for glob in value:
            if not TOOL_GLOB.fullmatch(glob):
                raise ValueError(f"{glob!r}: a tool name or glob of a-z 0-9 _ - * ? [ ]")
        return value

    @model_validator(mode="after")
    def _selects(self) -> Rule:
        if not (self.tools or self.modules or self.mode):
            raise ValueError("a rule needs tools, modules or mode to select what it holds")
        return self


class ApprovalsSpec(_Strict):
    """``approvals:``: calls that wait for a human (docs/approvals.md). First matching rule wins."""

    wait: float = Field(
        default=60,
        ge=0,
        le=3600,
        description="Seconds a call is held waiting for a decision before the agent is told to "
        "repeat it.",
    )
    lifetime: float = Field(
        default=900,
        gt=0,
        le=86400,
        description="Seconds a request stays valid: pending, or approved and not yet spent.",
    )
    progress_seconds: float = Field(
        default=5,
        ge=0.2,
        le=60,
        description="Interval of MCP progress notifications while a call is held.",
    )
    channels: Channels = Field(default_factory=Channels)
    approvers: Approvers = Field(default_factory=Approvers)
    rules: list[Rule] = Field(min_length=1, description="The rules, in order.")

    @model_validator(mode="after")
    def _consistent(self) -> ApprovalsSpec:
        configured = self.channels.configured()
        for index, rule in enumerate(self.rules):
            where = f"rules.{index}"
            for name in rule.notify or ():
                if name not in configured:
                    raise ValueError(f"{where}.notify: channel {name!r} is not configured")
            approvers = rule.approvers or self.approvers
            if approvers.matrix and self.channels.matrix is None:
                raise ValueError(f"{where}: Matrix approvers need approvals.channels.matrix")
            if not approvers.cli and not approvers.matrix:
                raise ValueError(f"{where}: nobody may approve (cli is false, no matrix users)")
            wait = self.wait if rule.wait is None else rule.wait
            lifetime = self.lifetime if rule.lifetime is None else rule.lifetime
            if lifetime < wait:
                raise ValueError(f"{where}: lifetime ({lifetime:g}) is shorter than wait")
        return self
