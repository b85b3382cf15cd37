"""``scoped-mcp creds check``: what is missing or broken, for every key, without any value.

Exit codes: 0 every key usable; 1 a required key is unusable; 2 warnings only (an optional key
unusable, a backend warning); 3 the manifest itself is invalid. ``--json`` prints the schema in
docs/troubleshooting.md.

The per-key checks are the server's start-up preflight (``credentials/check.py``), with one
difference: Vault's AppRole login spends only what can be spent again (``approle_login``
``"plain-only"``: a plain secret-id, never a wrapping token nor one marked
``secret_id_uses: limited``; see ``credentials/backends/vault/auth.py``). A key the check could
not look at is ``unverified``: a warning (exit 2), and the summary line says what was not checked.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from scoped_mcp.commands.creds_deep import DeepReport, deep_check, proven
from scoped_mcp.commands.creds_exposed import Exposure, read_exposures
from scoped_mcp.commands.creds_http import http_token_plans, judge_token
from scoped_mcp.credentials.backends.interface import (
    BackendContext,
    Finding,
    LoginSpend,
    SecretBackend,
)
from scoped_mcp.credentials.check import KeyReport, check_plans
from scoped_mcp.errors import ScopedMCPError

EXIT_OK, EXIT_BROKEN, EXIT_WARNINGS, EXIT_INVALID = 0, 1, 2, 3
SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Everything ``creds check`` found, ready to render."""

    manifest: str
    agent_id: str
    agent_type: str
    reports: list[KeyReport]
    backends: dict[str, Finding]
    deep: list[DeepReport]
    module_warnings: tuple[str, ...] = ()
    """Safety a module's configuration gives up (``ToolModule.configuration_warnings``)."""
    exposures: list[Exposure] = field(default_factory=list)
    audited: bool = False
    """Whether ``--audit`` was given (the JSON then has ``exposed``)."""
    grants: dict[str, Finding] = field(default_factory=dict)
    """OAuth grants of HTTP mcp_proxy modules, by module key."""

    @property
    def exit_code(self) -> int:
        if any(r.plan.required and r.broken for r in self.reports):
            return EXIT_BROKEN
        if any(d.required and d.finding.status not in ("ok", "unverified") for d in self.deep):
            return EXIT_BROKEN
        if any(g.status not in ("ok", "unverified") for g in self.grants.values()):
            return EXIT_BROKEN
        if self.warnings():
            return EXIT_WARNINGS
        return EXIT_OK

    def warnings(self) -> list[str]:
        found = [
            f"{r.plan.key} (optional, module {r.plan.module}): {r.finding.status}"
            for r in self.reports
            if not r.plan.required and not r.usable
        ]
        found += [
            f"{r.plan.key} (module {r.plan.module}): unverified"
            for r in self.reports
            if r.plan.required and r.unverified
        ]
        for report in self.reports:
            found += [f"{report.plan.key}: {w}" for w in report.finding.facts.get("warnings", [])]
        for name, finding in self.backends.items():
            found += [f"{name}: {w}" for w in finding.facts.get("warnings", [])]
        for deep in self.deep:
            if not deep.required and deep.finding.status != "ok":
                found.append(f"{deep.source} (optional, --deep): {deep.finding.status}")
            found += [f"{deep.source}: {w}" for w in deep.finding.facts.get("warnings", [])]
        found += list(self.module_warnings)
        found += [e.warning() for e in self.exposures if e.needs_rotation]
        return found


def _agent_id(manifest_text: str, agent_id: str | None, environ: Mapping[str, str]) -> str:
    chosen = agent_id or environ.get("AGENT_ID")
    if chosen:
        return chosen
    if "{agent_id}" in manifest_text:
        raise ScopedMCPError(
            "this manifest's references use {agent_id}: say which agent to check",
            fix="pass --agent-id ID (or set AGENT_ID)",
        )
    return "creds-check"


@dataclass(frozen=True, slots=True)
class Options:
    """How far ``creds check`` goes: issuing dynamic secrets, spending an AppRole secret-id."""

    deep: bool = False
    pg_dsn: str | None = None
    approle_login: LoginSpend = "plain-only"
    audit: str | None = None
    """An audit file whose ``credential_exposed`` records name keys to rotate."""
    http: bool = False
    """Check ``serve.http.token`` too: a stdio serve never reads it, so by default it is not a
    missing key (a bundled manifest names one for ``serve --http``)."""


def collect(
    manifest_path: str,
    agent_id: str | None,
    environ: Mapping[str, str],
    options: Options | None = None,
) -> CheckResult:
    """Load the manifest and check every key and backend. ``ScopedMCPError`` if invalid."""
    options = options or Options()
    from scoped_mcp import registry
    from scoped_mcp.credentials.backends import Catalog, load_backends
    from scoped_mcp.credentials.plan import build_plans, schemes_used
    from scoped_mcp.identity import AgentContext
    from scoped_mcp.limits.check import check_shared
    from scoped_mcp.limits.plan import limit_plans
    from scoped_mcp.manifest import load

    manifest = load(manifest_path)
    text = manifest.source_path.read_text() if manifest.source_path else ""
    ctx = AgentContext(_agent_id(text, agent_id, environ), manifest.agent_type)
    catalog = Catalog()
    planned = registry.plan(manifest)
    plans = build_plans(manifest, planned, ctx, catalog=catalog)
    plans = {**plans, **limit_plans(manifest.rate_limits, ctx, catalog)}
    if options.http:
        plans = {**plans, **http_token_plans(manifest, ctx, catalog)}
    module_warnings = tuple(
        f"module {item.key}: {warning}"
        for item in planned
        for warning in item.cls.configuration_warnings(item.config)
    )
    if manifest.approvals is not None:
        from scoped_mcp.approvals.build import channel_plans

        plans = {**plans, **channel_plans(manifest, ctx, catalog)}
    context = BackendContext(ctx, environ, login=options.approle_login)
    backends = load_backends(
        schemes_used(plans), manifest.credentials.settings, context, catalog=catalog
    )
    try:
        described = _describe(backends)
        reports = check_plans(plans, backends)
        reports, shared = check_shared(manifest.rate_limits, reports, backends)
        described.update(shared)
        deep = deep_check(reports, backends, pg_dsn=options.pg_dsn) if options.deep else []
        reports = judge_token(proven(reports, deep), backends)
    finally:
        for backend in {id(b): b for b in backends.values()}.values():
            backend.close()
    exposures = read_exposures(options.audit) if options.audit else []
    return CheckResult(
        str(manifest.source_path),
        ctx.agent_id,
        ctx.agent_type,
        reports,
        described,
        deep,
        module_warnings,
        exposures,
        audited=options.audit is not None,
        grants=_grants(planned, ctx),
    )


def _grants(planned: Any, ctx: Any) -> dict[str, Finding]:
    """The OAuth grants' findings; imports nothing of OAuth for a manifest without one."""
    if "scoped_mcp.oauth.config" not in sys.modules:
        return {}
    from scoped_mcp.oauth.check import findings

    return findings(planned, ctx)


def _describe(backends: Mapping[str, SecretBackend]) -> dict[str, Finding]:
    described: dict[str, Finding] = {}
    seen: set[int] = set()
    for scheme, backend in sorted(backends.items()):
        if id(backend) in seen:
            continue
        seen.add(id(backend))
        finding = backend.describe()
        if finding is not None:
            described[scheme] = finding
    return described


def to_json(result: CheckResult) -> dict[str, Any]:
    """The stable, documented JSON form (schema_version 1); ``oauth`` only when a module has
    an oauth: block."""
    counts: dict[str, int] = {}
    for report in result.reports:
        counts[report.finding.status] = counts.get(report.finding.status, 0) + 1
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "manifest": result.manifest,
        "agent_id": result.agent_id,
        "agent_type": result.agent_type,
        "exit_code": result.exit_code,
        "summary": counts,
        "warnings": result.warnings(),
        "keys": [
            {
                "module": r.plan.module,
                "key": r.plan.key,
                "required": r.plan.required,
                "source": str(r.plan.ref),
                "backend": r.plan.ref.scheme,
                "status": r.finding.status,
                "detail": r.finding.detail,
                "fix": r.finding.fix,
                "facts": r.finding.facts,
            }
            for r in result.reports
        ],
        "backends": {
            name: {"status": f.status, "detail": f.detail, "fix": f.fix, "facts": f.facts}
            for name, f in result.backends.items()
        },
        "deep": [
            {
                "source": str(d.source),
                "backend": d.source.scheme,
                "keys": d.keys,
                "required": d.required,
                "status": d.finding.status,
                "detail": d.finding.detail,
                "fix": d.finding.fix,
                "facts": d.finding.facts,
            }
            for d in result.deep
        ],
    }
    if result.audited:
        document["exposed"] = [
            {
                "keys": list(e.keys),
                "backend": e.backend,
                "source": e.source,
                "dynamic": e.dynamic,
                "remedy": e.remedy,
                "rotate": e.needs_rotation,
                "count": e.count,
                "last": e.last,
                "tools": list(e.tools),
            }
            for e in result.exposures
        ]
    if result.grants:
        document["oauth"] = {
            key: {"status": f.status, "detail": f.detail, "fix": f.fix}
            for key, f in result.grants.items()
        }
    return document


_COLOURS = {"ok": "32", "unverified": "33", "unreachable": "33"}  # every other status is red
_MEANING = {
    EXIT_OK: "all good",
    EXIT_BROKEN: "a required key is unusable",
    EXIT_WARNINGS: "warnings only",
}


def render(result: CheckResult, out: TextIO, *, colour: bool) -> None:
    """Backends, the key table with a fix under each problem, deep checks, warnings, summary."""

    def paint(status: str) -> str:
        code = _COLOURS.get(status, "31")
        return f"\x1b[{code}m{status}\x1b[0m" if colour else status

    print(f"manifest {result.manifest}  agent {result.agent_id} ({result.agent_type})", file=out)
    for name, finding in result.backends.items():
        print(f"backend {name}: {paint(finding.status)}  {finding.detail}".rstrip(), file=out)
        if finding.fix:
            print(f"  fix: {finding.fix}", file=out)
    _render_table(result, out, paint)
    for key, finding in result.grants.items():
        print(f"oauth {key}: {paint(finding.status)}  {finding.detail}".rstrip(), file=out)
        if finding.fix and finding.status != "ok":
            print(f"  fix: {finding.fix}", file=out)
    for deep in result.deep:
        line = f"deep {deep.source}: {paint(deep.finding.status)}  {deep.finding.detail}"
        print(line.rstrip(), file=out)
        if deep.finding.fix and deep.finding.status != "ok":
            print(f"  fix: {deep.finding.fix}", file=out)
    for exposure in result.exposures:
        if not exposure.needs_rotation:
            keys = ", ".join(exposure.keys)
            print(f"exposed {keys} ({exposure.source}): lease revoked at once", file=out)
    for warning in result.warnings():
        print(f"warning: {warning}", file=out)
    print(summary_line(result), file=out)


def _render_table(result: CheckResult, out: TextIO, paint: Callable[[str], str]) -> None:
    headers = ("MODULE", "KEY", "SOURCE")
    cells = [
        (r.plan.module, r.plan.key + ("" if r.plan.required else " (optional)"), str(r.plan.ref))
        for r in result.reports
    ]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    head = "  ".join(f"{h:<{w}}" for h, w in zip(headers, widths, strict=True))
    print(f"{head}  STATUS", file=out)
    for cell, report in zip(cells, result.reports, strict=True):
        line = "  ".join(f"{c:<{w}}" for c, w in zip(cell, widths, strict=True))
        print(f"{line}  {paint(report.finding.status)}  {report.finding.detail}".rstrip(), file=out)
        if report.finding.fix and not report.usable:
            print(f"{'':<{widths[0]}}  fix: {report.finding.fix}", file=out)


def summary_line(result: CheckResult) -> str:
    """``3 keys (2 ok, 1 missing), 1 required unusable, 0 warnings: exit 1 (...)``."""
    counts: dict[str, int] = {}
    for report in result.reports:
        counts[report.finding.status] = counts.get(report.finding.status, 0) + 1
    by_status = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    total = len(result.reports)
    bad = sum(1 for r in result.reports if r.plan.required and r.broken)
    code = result.exit_code
    line = (
        f"{total} key{'' if total == 1 else 's'} ({by_status or 'none'}), {bad} required "
        f"unusable, {len(result.warnings())} warnings: exit {code} ({_MEANING[code]})"
    )
    return line + _not_checked(result.reports)


def _not_checked(reports: list[KeyReport]) -> str:
    """What the check could not look at: keys unverified for want of a login, and others."""
    unverified = [r for r in reports if r.unverified]
    no_login = sum(1 for r in unverified if r.finding.facts.get("verified") is False)
    parts = []
    if no_login:
        keys, its = ("key", "its") if no_login == 1 else ("keys", "their")
        parts.append(f"{no_login} {keys} unverified ({its} existence and the token's capabilities)")
    if others := len(unverified) - no_login:
        keys = "key" if others == 1 else "keys"
        parts.append(f"{others} {keys} unverified (not read: see the detail)")
    return f"; not checked: {', '.join(parts)}" if parts else ""


def run(
    manifest_path: str,
    *,
    agent_id: str | None,
    as_json: bool,
    environ: Mapping[str, str],
    options: Options | None = None,
    out: TextIO | None = None,
) -> int:
    """The whole command; returns the exit code."""
    out = out or sys.stdout
    options = options or Options()
    try:
        result = collect(manifest_path, agent_id, environ, options)
    except ScopedMCPError as exc:
        if as_json:
            print(
                json.dumps(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "exit_code": EXIT_INVALID,
                        "error": exc.diagnostics(),
                    },
                    indent=2,
                ),
                file=out,
            )
        else:
            print(f"scoped-mcp: {exc.diagnostics()}", file=sys.stderr)
        return EXIT_INVALID
    if as_json:
        print(json.dumps(to_json(result), indent=2, default=str), file=out)
    else:
        render(result, out, colour=out.isatty())
    return result.exit_code
