"""``creds check --deep``: issue each dynamic credential once, prove it, revoke it at once.

Only ``vault-dynamic:`` sources are issued, once per source however many keys share it, and only
when their key check passed with a login (a check that may not log in, with a wrapped or
limited-use AppRole secret-id, issues nothing). A source whose fields are ``username`` and
``password`` is tried as a PostgreSQL login when ``--deep-pg-dsn`` says where the server is;
anything else is proved by issue and revocation alone. Values live only inside ``_issue``; no
value, not even a username, reaches a finding, and no exception text from psycopg is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from scoped_mcp.credentials.backends.interface import Finding, SecretBackend
from scoped_mcp.credentials.check import KeyReport
from scoped_mcp.credentials.lease import LeaseInfo
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import CredentialError

SHORT_LEASE_SECONDS = 30.0
"""A lease living less than this may expire during one tool call."""
Login = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class DeepReport:
    """One dynamic source issued, proved and revoked (or why not)."""

    source: SecretRef
    keys: list[str]
    required: bool
    finding: Finding


def proven(reports: list[KeyReport], deep: list[DeepReport]) -> list[KeyReport]:
    """The key reports with each key of a source ``--deep`` issued and revoked turned ``ok``:
    issuing it is what proves a dynamic secret's role."""
    done = {d.source.path: d for d in deep if d.finding.status == "ok"}
    out = []
    for report in reports:
        ref = report.plan.ref
        deep_report = done.get(ref.path.strip("/")) if ref.scheme == "vault-dynamic" else None
        if deep_report is None or not report.unverified:
            out.append(report)
            continue
        facts = {**report.finding.facts, "issued": True}
        detail = f"issued and revoked by --deep: {deep_report.finding.detail}"
        out.append(KeyReport(report.plan, Finding("ok", detail, facts=facts)))
    return out


def deep_check(
    reports: list[KeyReport], backends: Mapping[str, SecretBackend], *, pg_dsn: str | None
) -> list[DeepReport]:
    """Issue every ``vault-dynamic:`` source once, prove it where possible, revoke it."""
    groups: dict[str, list[KeyReport]] = {}
    for report in reports:
        if report.plan.ref.scheme == "vault-dynamic":
            groups.setdefault(report.plan.ref.path.strip("/"), []).append(report)
    done = []
    for path, group in groups.items():
        source = SecretRef("vault-dynamic", path, None)
        keys = [f"{r.plan.module}.{r.plan.key}" for r in group]
        required = any(r.plan.required for r in group)
        done.append(DeepReport(source, keys, required, _deep_one(source, group, backends, pg_dsn)))
    return done


def _deep_one(
    source: SecretRef,
    group: list[KeyReport],
    backends: Mapping[str, SecretBackend],
    pg_dsn: str | None,
) -> Finding:
    failed = next((r for r in group if r.broken), None)
    if failed is not None:
        return Finding(failed.finding.status, "not issued: its key check failed (see above)")
    if any(r.finding.facts.get("verified") is False for r in group):
        return Finding("unverified", "not issued: no AppRole login (its key is unverified)")
    return _issue(backends[source.scheme], source, pg_dsn)


def _issue(backend: SecretBackend, source: SecretRef, pg_dsn: str | None) -> Finding:
    try:
        fetched = backend.fetch(source)
    except CredentialError as exc:
        return Finding(exc.status, f"issuing failed: {exc.message}", exc.fix)  # type: ignore[arg-type]
    lease = fetched.lease
    facts: dict[str, Any] = {
        "fields": sorted(str(k) for k in fetched.values),
        "lease_ttl": lease.ttl if lease else fetched.ttl,
        "renewable": lease.renewable if lease else False,
        "max_ttl": None,  # Vault shows a role's max_ttl only to tokens that may read the role
    }
    try:
        facts["login"], detail = _prove(fetched.values, pg_dsn)
    finally:
        fetched.values.clear()
        revoke_error = _revoke(backend, lease)
    facts["revoked"] = revoke_error is None and lease is not None
    ttl = facts["lease_ttl"]
    if ttl is not None and 0 < ttl < SHORT_LEASE_SECONDS:
        facts["warnings"] = [
            f"the lease lasts {ttl:.0f}s, shorter than a tool call may take "
            f"({SHORT_LEASE_SECONDS:.0f}s): raise the role's default_ttl"
        ]
    limit = getattr(backend, "lease_ttl", None)
    if isinstance(limit, float) and ttl is not None and ttl > limit:
        mount, _, role = source.path.strip("/").partition("/creds/")
        role = role or "<role>"
        facts.setdefault("warnings", []).append(
            f"the lease lasts {ttl:.0f}s and could not be held to lease_ttl ({limit:.0f}s), so "
            f"a crashed server leaves it usable that long: bao write {mount}/roles/{role} "
            f"default_ttl={int(limit)}s (and allow update on sys/leases/renew)"
        )
    if revoke_error is not None:
        detail = f"issued, but revoking it failed: {revoke_error.message}"
        return Finding(revoke_error.status, detail, revoke_error.fix, facts)  # type: ignore[arg-type]
    if facts["login"] == "failed":
        fix = "check the role's creation_statements/grants and --deep-pg-dsn (host, port, dbname)"
        return Finding("broken", detail, fix, facts)
    return Finding("ok", detail, facts=facts)


def _revoke(backend: SecretBackend, lease: LeaseInfo | None) -> CredentialError | None:
    if lease is None:
        return None
    try:
        backend.revoke(lease)
    except CredentialError as exc:
        return exc
    return None


def _prove(values: Mapping[str | None, str], pg_dsn: str | None) -> tuple[Login, str]:
    """Log in to PostgreSQL with an issued username and password, when that is possible."""
    if not {"username", "password"} <= set(values):
        return "skipped", "issued and revoked (no username/password fields: no login to try)"
    if pg_dsn is None:
        return "skipped", (
            "issued and revoked; PostgreSQL login not tried "
            "(--deep-pg-dsn 'host=... port=... dbname=...' tries one)"
        )
    try:
        import psycopg
    except ImportError:
        return "skipped", "issued and revoked; PostgreSQL login not tried: psycopg not installed"
    try:
        with psycopg.connect(
            pg_dsn,
            user=values["username"],
            password=values["password"],
            connect_timeout=5,
            autocommit=True,
        ) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        # The server's message names the role: only the error class is kept.
        return (
            "failed",
            f"issued and revoked, but the PostgreSQL login failed ({type(exc).__name__})",
        )
    return "ok", "issued, logged in to PostgreSQL, revoked"
