"""From ``approvals:`` to a running gate: channel keys, checks against the tools, per-call keys.

* ``channel_plans``: the broker plans of the channels' keys (``approvals.ntfy``,
  ``approvals.matrix``), with a module's precedence: the channel's ``credentials:``, then
  ``credentials.keys``, then the default source. They are preflighted with every other key.
* ``check_rules``: every rule must select at least one tool of this manifest and name only modules
  it has; a rule that selects nothing is a typo that would leave a tool ungated.
* ``per_call_keys``: the keys only approval-gated tools can use. A module's keys qualify when every
  tool the manifest gives it (its static ``@tool`` methods in its mode and the dynamic tools its
  config names) is selected by a rule; a module with any ungated tool shares its keys with calls
  nobody approved, so they stay in the ordinary cache; so do the keys of a module with run-time
  (dynamic) tools, whose upstream is handed its credential at start-up (``mcp_proxy``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from scoped_mcp.approvals.channels import plan_module
from scoped_mcp.approvals.config import CHANNEL_KEYS, ApprovalsSpec
from scoped_mcp.approvals.control import paths
from scoped_mcp.approvals.rules import Rules, selects
from scoped_mcp.credentials import refs
from scoped_mcp.credentials.backends import Catalog
from scoped_mcp.credentials.plan import KeyPlan, _References
from scoped_mcp.credentials.view import ModuleCredentials
from scoped_mcp.errors import ManifestError
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import Manifest

if TYPE_CHECKING:
    from scoped_mcp.approvals.gate import ApprovalGate, Channel
    from scoped_mcp.audit.log import AuditLog
    from scoped_mcp.credentials.broker import CredentialBroker
    from scoped_mcp.redaction import Redactor
    from scoped_mcp.registry import PlannedModule

OPTIONAL_KEYS = frozenset({"NTFY_TOKEN"})


def _spec(manifest: Manifest) -> ApprovalsSpec:
    assert manifest.approvals is not None
    return manifest.approvals


def channel_plans(
    manifest: Manifest, agent_ctx: AgentContext, catalog: Catalog
) -> dict[str, dict[str, KeyPlan]]:
    """The broker plans of every configured channel's keys."""
    spec = _spec(manifest)
    references = _References(manifest, agent_ctx, catalog)
    plans: dict[str, dict[str, KeyPlan]] = {}
    for name, channel in (("ntfy", spec.channels.ntfy), ("matrix", spec.channels.matrix)):
        if channel is None:
            continue
        module = plan_module(name)
        keyed: dict[str, KeyPlan] = {}
        for key in CHANNEL_KEYS[name]:
            if key in channel.credentials:
                where = f"approvals.channels.{name}.credentials.{key}"
                ref = references.parse(channel.credentials[key], where=where)
            elif key in manifest.credentials.keys:
                text = manifest.credentials.keys[key]
                ref = references.parse(text, where=f"credentials.keys.{refs.validate_key(key)}")
            else:
                ref = references.default(key)
            keyed[key] = KeyPlan(module, key, ref, required=key not in OPTIONAL_KEYS)
        plans[module] = keyed
    return plans


def _tools_of(item: PlannedModule) -> list[tuple[str, str]]:
    """(tool name, mode) of every tool the manifest gives a module."""
    return [(t.name, str(t.spec.mode)) for t in item.tools] + [
        (name, str(mode)) for name, mode in item.configured
    ]


def check_rules(manifest: Manifest, planned: Sequence[PlannedModule]) -> None:
    """Refuse rules that name unknown modules or select no tool of this manifest."""
    spec = _spec(manifest)
    for index, rule in enumerate(spec.rules):
        where = f"approvals.rules.{index}"
        for module in rule.modules:
            if module not in manifest.modules:
                raise ManifestError(
                    f"{where}.modules: {module!r} is not a module of this manifest",
                    fix=f"use one of: {', '.join(sorted(manifest.modules)) or '(none)'}",
                )
        chosen = [
            name
            for item in planned
            for name, mode in _tools_of(item)
            if selects(rule, module=item.key, tool=name, mode=mode)
        ]
        if not chosen:
            names = sorted(name for item in planned for name, _ in _tools_of(item))
            raise ManifestError(
                f"{where}: selects no tool of this manifest",
                fix=f"check the names and globs; the tools are: {', '.join(names) or '(none)'}",
            )


def check_startup(
    manifest: Manifest,
    planned: Sequence[PlannedModule],
    environ: Mapping[str, str],
    agent_ctx: AgentContext,
) -> None:
    """Everything that can refuse start-up, checked before anything is opened."""
    check_rules(manifest, planned)
    ntfy = _spec(manifest).channels.ntfy
    if ntfy is not None:
        from scoped_mcp.modules.ntfy import TOPIC

        if not TOPIC.fullmatch(agent_ctx.expand(ntfy.topic)):
            raise ManifestError(
                f"approvals.channels.ntfy.topic: {ntfy.topic!r} gives a topic longer than 64 "
                f"characters for agent {agent_ctx.agent_id!r}",
                fix="shorten the template; ntfy topics are at most 64 characters",
            )
    paths.socket_dir(environ, create=True)


def per_call_keys(
    manifest: Manifest,
    planned: Sequence[PlannedModule],
    plans: Mapping[str, Mapping[str, KeyPlan]],
) -> set[tuple[str, str]]:
    """The (module, key) pairs that only approval-gated tools use."""
    rules = Rules(_spec(manifest))
    keys: set[tuple[str, str]] = set()
    for item in planned:
        if item.configured:
            # Its run-time tools come from a long-lived upstream that is given its credential at
            # start-up (mcp_proxy): no per-call lease can serve it.
            continue
        tools = _tools_of(item)
        gated = all(rules.match(module=item.key, tool=n, mode=m) for n, m in tools)
        if tools and gated:
            keys.update((item.key, key) for key in plans.get(item.key, {}))
    return keys


def build_gate(
    manifest: Manifest,
    agent_ctx: AgentContext,
    environ: Mapping[str, str],
    *,
    planned: Sequence[PlannedModule],
    plans: Mapping[str, Mapping[str, KeyPlan]],
    audit: AuditLog,
    redactor: Redactor,
    broker: CredentialBroker,
) -> ApprovalGate:
    """The gate of one server (``check_startup`` has passed)."""
    from scoped_mcp.approvals.gate import ApprovalGate
    from scoped_mcp.approvals.store import Store

    spec = _spec(manifest)
    broker.lease_per_call(per_call_keys(manifest, planned, plans))
    return ApprovalGate(
        rules=Rules(spec),
        store=Store(),
        audit=audit,
        redactor=redactor,
        broker=broker,
        channels=_channels(spec, agent_ctx, broker),
        progress_seconds=spec.progress_seconds,
        agent_id=agent_ctx.agent_id,
        agent_type=agent_ctx.agent_type,
        environ=environ,
    )


def _channels(
    spec: ApprovalsSpec, agent_ctx: AgentContext, broker: CredentialBroker
) -> list[Channel]:
    channels: list[Channel] = []
    if spec.channels.ntfy is not None:
        from scoped_mcp.approvals.channels.ntfy import NtfyChannel

        view = ModuleCredentials(broker, plan_module("ntfy"), OPTIONAL_KEYS)
        channels.append(NtfyChannel(spec.channels.ntfy, agent_ctx, view))
    if spec.channels.matrix is not None:
        from scoped_mcp.approvals.channels.matrix import MatrixChannel

        view = ModuleCredentials(broker, plan_module("matrix"), frozenset())
        channels.append(MatrixChannel(spec.channels.matrix, agent_ctx, view))
    return channels
