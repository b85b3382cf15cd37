"""The credential preflight: is every key of every module usable? Shared by start-up and
``scoped-mcp creds check``. It never keeps, prints or logs a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scoped_mcp.credentials.backends.interface import Finding, SecretBackend
from scoped_mcp.credentials.broker import KeyPlan
from scoped_mcp.errors import CredentialError


@dataclass(frozen=True, slots=True)
class KeyReport:
    """One key's finding, with where it comes from."""

    plan: KeyPlan
    finding: Finding

    @property
    def usable(self) -> bool:
        return self.finding.status == "ok"


def check_plans(
    plans: Mapping[str, Mapping[str, KeyPlan]], backends: Mapping[str, SecretBackend]
) -> list[KeyReport]:
    """Check every planned key; sources shared by several keys are checked once per key."""
    reports = []
    for module in plans.values():
        for plan in module.values():
            backend = backends[plan.ref.scheme]
            try:
                finding = backend.check(plan.ref)
            except CredentialError as exc:
                finding = Finding(exc.status, exc.message, exc.fix)  # type: ignore[arg-type]
            reports.append(KeyReport(plan, finding))
    return reports


def require_usable(reports: list[KeyReport]) -> None:
    """Raise one ``CredentialError`` listing every required key that is not usable."""
    broken = [r for r in reports if r.plan.required and not r.usable]
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
