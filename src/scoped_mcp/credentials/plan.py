"""Turns a manifest into the broker's plan: for every module, where each declared key lives.

Precedence for a key: the module's own ``credentials:`` block, then ``credentials.keys``, then the
default ``credentials.source`` under the key's own name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from scoped_mcp.credentials import refs
from scoped_mcp.credentials.broker import KeyPlan
from scoped_mcp.errors import ManifestError
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import Manifest

if TYPE_CHECKING:
    from scoped_mcp.registry import PlannedModule


def build_plans(
    manifest: Manifest, planned: Sequence[PlannedModule], agent_ctx: AgentContext
) -> dict[str, dict[str, KeyPlan]]:
    """Every module's declared keys mapped to the reference that serves them."""
    spec = manifest.credentials
    shared = {
        refs.validate_key(key): refs.parse(text, agent_ctx, where=f"credentials.keys.{key}")
        for key, text in spec.keys.items()
    }
    plans: dict[str, dict[str, KeyPlan]] = {}
    for item in planned:
        overrides = manifest.modules[item.key].credentials
        declared_required, declared_optional = item.cls.declared_credentials(item.config)
        required = list(declared_required)
        optional = [k for k in declared_optional if k not in required]
        declared = {*required, *optional}
        for key in overrides:
            if key not in declared:
                raise ManifestError(
                    f"modules.{item.key}.credentials.{key}: module {item.key!r} does not use "
                    f"{key!r}",
                    fix=f"it declares: {', '.join(sorted(declared)) or 'no credentials'}",
                )
        module_plans = {}
        for key in [*required, *optional]:
            if key in overrides:
                where = f"modules.{item.key}.credentials.{key}"
                ref = refs.parse(overrides[key], agent_ctx, where=where)
            elif key in shared:
                ref = shared[key]
            else:
                ref = refs.default_ref(
                    key,
                    source=spec.source,
                    agent_ctx=agent_ctx,
                    file_path=str(spec.path) if spec.path else None,
                    keyring_service=spec.keyring.service,
                    vault_path=spec.vault.path if spec.vault else None,
                    bitwarden_item=spec.bitwarden.item if spec.bitwarden else None,
                )
            module_plans[key] = KeyPlan(item.key, key, ref, required=key in required)
        plans[item.key] = module_plans
    return plans


def schemes_used(plans: dict[str, dict[str, KeyPlan]]) -> set[str]:
    """The reference schemes a plan needs backends for."""
    return {plan.ref.scheme for module in plans.values() for plan in module.values()}
