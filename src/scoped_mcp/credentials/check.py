"""The credential preflight: is every key of every module usable? Shared by start-up and
``scoped-mcp creds check``. It never keeps, prints or logs a value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scoped_mcp.credentials.backends.interface import Finding, SecretBackend
from scoped_mcp.credentials.plan import KeyPlan
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import CredentialError


@dataclass(frozen=True, slots=True)
class KeyReport:
    """One key's finding, with where it comes from."""

    plan: KeyPlan
    finding: Finding

    @property
    def usable(self) -> bool:
        """Whether the key was proved usable (its value read, or its existence proven)."""
        return self.finding.status == "ok"

    @property
    def unverified(self) -> bool:
        """Whether the check could not look (no login allowed): a warning, not a failure."""
        return self.finding.status == "unverified"

    @property
    def broken(self) -> bool:
        """Whether the key was found unusable (missing, denied, unreachable, ...)."""
        return not (self.usable or self.unverified)


def check_plans(
    plans: Mapping[str, Mapping[str, KeyPlan]], backends: Mapping[str, SecretBackend]
) -> list[KeyReport]:
    """Check every planned key, in plan order.

    Each backend gets all its keys at once (``check_many``: Vault sends one health request, one
    lookup-self and one capabilities request for the lot; others check key by key).
    """
    ordered = [plan for module in plans.values() for plan in module.values()]
    groups: dict[int, list[int]] = {}
    for index, plan in enumerate(ordered):
        groups.setdefault(id(backends[plan.ref.scheme]), []).append(index)
    findings: dict[int, Finding] = {}
    for indexes in groups.values():
        backend = backends[ordered[indexes[0]].ref.scheme]
        refs = [ordered[i].ref for i in indexes]
        findings.update(zip(indexes, _check_refs(backend, refs), strict=True))
    return [KeyReport(plan, findings[i]) for i, plan in enumerate(ordered)]


def _check_refs(backend: SecretBackend, refs: Sequence[SecretRef]) -> list[Finding]:
    try:
        return backend.check_many(refs)
    except CredentialError as exc:
        return [Finding.failed(exc)] * len(refs)


def require_usable(reports: list[KeyReport]) -> None:
    """Raise one ``CredentialError`` listing every required key found unusable.

    An ``unverified`` key is not refused: nothing showed it broken, and its first read will say.
    """
    broken = [r for r in reports if r.plan.required and r.broken]
    if not broken:
        return
    lines = []
    for report in broken:
        plan, finding = report.plan, report.finding
        line = f"{plan.key} (module {plan.module}, source {plan.ref}): {finding.status}"
        if finding.detail:
            line += f": {finding.detail}"
        if finding.fix:
            line += f"\n      fix: {finding.fix}"
        lines.append(line)
    raise CredentialError(
        "credentials not usable:\n  " + "\n  ".join(lines),
        fix="run 'scoped-mcp creds check --manifest ...' for details",
    )
