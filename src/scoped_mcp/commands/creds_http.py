"""``creds check`` of the HTTP bearer token (``serve.http.token``): found, read, strong enough.

The token is planned as the server plans it for ``--http`` (key ``HTTP_TOKEN`` of ``serve.http``)
and checked with every other key, so its statuses mean the same. A key the check found ``ok`` is
then read once more to judge its strength (``http/token_strength.py``): a token the server would
refuse (shorter than ``MIN_TOKEN_BYTES``) is ``insecure``, a weak one is ``ok`` with a warning.
Where the check could not read it (``unverified``), its strength is not judged and it says so.
Nothing about the value is reported beyond that verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from scoped_mcp.credentials.backends.interface import Finding, SecretBackend
from scoped_mcp.credentials.check import KeyReport
from scoped_mcp.errors import CredentialError, SecretNotFound

if TYPE_CHECKING:
    from scoped_mcp.credentials.backends import Catalog
    from scoped_mcp.credentials.plan import KeyPlan
    from scoped_mcp.http.token_strength import Strength
    from scoped_mcp.identity import AgentContext
    from scoped_mcp.manifest import Manifest

FIX = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def http_token_plans(
    manifest: Manifest, agent_ctx: AgentContext, catalog: Catalog
) -> dict[str, dict[str, KeyPlan]]:
    """The bearer token's plan when the manifest names one, else nothing."""
    if manifest.serve.http.token is None:
        return {}
    from scoped_mcp.http.token import token_plans

    return token_plans(manifest, agent_ctx, catalog)


def judge_token(reports: list[KeyReport], backends: Mapping[str, SecretBackend]) -> list[KeyReport]:
    """``reports`` with the bearer token's finding replaced by one that judged its strength."""
    from scoped_mcp.http.token import MODULE

    return [
        KeyReport(r.plan, _judged(r, backends[r.plan.ref.scheme])) if r.plan.module == MODULE else r
        for r in reports
    ]


def _judged(report: KeyReport, backend: SecretBackend) -> Finding:
    finding = report.finding
    if finding.status != "ok":
        if finding.status == "unverified":
            warnings = [*finding.facts.get("warnings", []), "strength not judged: not read"]
            return Finding(
                finding.status, finding.detail, finding.fix, {**finding.facts, "warnings": warnings}
            )
        return finding
    try:
        strength, length = _measure(backend, report)
    except CredentialError as exc:
        return Finding.failed(exc, finding.facts)
    from scoped_mcp.http.token import MIN_TOKEN_BYTES
    from scoped_mcp.http.token_strength import STRONG_BITS

    facts = {**finding.facts, "strength": "weak" if strength.weak else "strong"}
    if length < MIN_TOKEN_BYTES:
        detail = f"shorter than {MIN_TOKEN_BYTES} bytes: serve --http refuses it"
        return Finding("insecure", detail, FIX, {**facts, "strength": "refused"})
    if strength.weak:
        warning = f"the token looks weak (under {STRONG_BITS} bits estimated); {FIX}"
        facts["warnings"] = [*finding.facts.get("warnings", []), warning]
    return Finding("ok", f"{finding.detail}; read, {facts['strength']}".lstrip("; "), None, facts)


def _measure(backend: SecretBackend, report: KeyReport) -> tuple[Strength, int]:
    """The token's strength and length in bytes, read once; the value is dropped at once."""
    from scoped_mcp.http.token_strength import judge

    fetched = backend.fetch(report.plan.ref)
    try:
        value = fetched.values.get(report.plan.ref.field)
        if value is None:
            raise SecretNotFound(f"{report.plan.ref} has no value", fix="set the token there")
        raw = value.encode()
        return judge(raw), len(raw)
    finally:
        fetched.values.clear()
