"""``creds check`` for the shared limiter: the URL's secret is readable and Redis answers PING.

A server whose shared limiter cannot reach Redis refuses every call, so the check says ``ok`` only
when a PING through that URL succeeded. With a secret reference the key's own report carries the
result (an unanswered PING makes it ``unreachable``: a required key, exit 1); a literal URL has no
key, so it is reported as the ``rate_limits.shared`` backend (a failure is a warning, exit 2).
The URL is read once, used for the PING, and dropped; only the error's type is kept.
"""

from __future__ import annotations

from collections.abc import Mapping

from scoped_mcp.credentials.backends.interface import Finding, SecretBackend
from scoped_mcp.credentials.check import KeyReport
from scoped_mcp.errors import CredentialError
from scoped_mcp.limits.config import RateLimitsSpec, is_url
from scoped_mcp.limits.plan import MODULE

FIX = "start Redis, or correct the URL (host, port, password) the secret holds"


def ping(url: str, timeout: float) -> Finding:
    """PING Redis at ``url``: ``ok``, or ``unreachable`` with the error's type only."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError:
        return Finding("broken", "the URL is not a redis://, rediss:// or unix:// URL", FIX)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - the redis boundary: the type is all we keep
        detail = f"Redis did not answer PING ({type(exc).__name__}): every call would be refused"
        return Finding("unreachable", detail, FIX)
    finally:
        client.close()
    return Finding("ok", "Redis answered PING")


def check_shared(
    spec: RateLimitsSpec, reports: list[KeyReport], backends: Mapping[str, SecretBackend]
) -> tuple[list[KeyReport], dict[str, Finding]]:
    """The key reports with the shared URL's PING result, and a finding for a literal URL."""
    if spec.shared is None:
        return reports, {}
    if is_url(spec.shared):
        finding = ping(spec.shared.strip(), spec.timeout)
        if finding.status != "ok":
            warning = f"shared rate limiter: {finding.status}: {finding.detail}"
            finding = Finding(finding.status, finding.detail, finding.fix, {"warnings": [warning]})
        return reports, {MODULE: finding}
    return [_pinged(report, spec, backends) for report in reports], {}


def _pinged(
    report: KeyReport, spec: RateLimitsSpec, backends: Mapping[str, SecretBackend]
) -> KeyReport:
    ref = report.plan.ref
    # A dynamic secret would be issued (a lease) just for this check: left as its key check says.
    if report.plan.module != MODULE or not report.usable or ref.scheme == "vault-dynamic":
        return report
    try:
        fetched = backends[ref.scheme].fetch(ref)
    except CredentialError as exc:
        return KeyReport(report.plan, Finding.failed(exc))
    try:
        url = fetched.values.get(ref.field or None)
        if fetched.lease is not None or url is None:
            return report
        finding = ping(url, spec.timeout)
    finally:
        fetched.values.clear()
    if finding.status != "ok":
        return KeyReport(report.plan, finding)
    detail = f"{report.finding.detail}; Redis answered PING".lstrip("; ")
    facts = {**report.finding.facts, "ping": True}
    return KeyReport(report.plan, Finding("ok", detail, report.finding.fix, facts))
