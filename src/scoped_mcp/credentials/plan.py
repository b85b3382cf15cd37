"""Turns a manifest into the broker's plan: for every module, where each declared key lives.

Precedence for a key: the module's own ``credentials:`` block, then ``credentials.keys``, then the
default ``credentials.source`` under the key's own name. Each reference is read by its scheme's
backend class (``SecretBackend.parse_ref``), and the default one built by the source's
(``SecretBackend.default_ref``); only those classes are imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scoped_mcp.credentials import refs
from scoped_mcp.credentials.backends import Catalog, owner_of
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import ManifestError
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import Manifest

if TYPE_CHECKING:
    from scoped_mcp.registry import PlannedModule


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """Where one declared key of one module comes from."""

    module: str
    key: str
    ref: SecretRef
    required: bool


class _References:
    """Reads references and default references for one manifest, through the backend classes."""

    def __init__(self, manifest: Manifest, agent_ctx: AgentContext, catalog: Catalog) -> None:
        self._spec = manifest.credentials
        self._ctx = agent_ctx
        self._catalog = catalog

    def parse(self, text: str, *, where: str) -> SecretRef:
        scheme, path, field = refs.split(text, self._ctx, where=where)
        cls = self._catalog.get(scheme)
        return cls.parse_ref(scheme, path, field, text=text, where=where)

    def default(self, key: str) -> SecretRef:
        scheme = self._spec.source
        cls = self._catalog.get(scheme)
        settings = self._spec.settings.get(owner_of(cls, scheme))
        problem = cls.source_problem(settings)
        if problem is not None:
            raise ManifestError(f"credentials: {problem}")
        return cls.default_ref(scheme, key, settings, self._ctx)


def build_plans(
    manifest: Manifest,
    planned: Sequence[PlannedModule],
    agent_ctx: AgentContext,
    *,
    catalog: Catalog | None = None,
) -> dict[str, dict[str, KeyPlan]]:
    """Every module's declared keys mapped to the reference that serves them."""
    references = _References(manifest, agent_ctx, catalog or Catalog())
    shared = {
        refs.validate_key(key): references.parse(text, where=f"credentials.keys.{key}")
        for key, text in manifest.credentials.keys.items()
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
                ref = references.parse(overrides[key], where=where)
            elif key in shared:
                ref = shared[key]
            else:
                ref = references.default(key)
            module_plans[key] = KeyPlan(item.key, key, ref, required=key in required)
        plans[item.key] = module_plans
    return plans


def schemes_used(plans: dict[str, dict[str, KeyPlan]]) -> set[str]:
    """The reference schemes a plan needs backends for."""
    return {plan.ref.scheme for module in plans.values() for plan in module.values()}
