"""The Vault backend's preflight: health, authentication, capabilities and the backend summary.

One implementation serves the server's start-up and ``scoped-mcp creds check``; the only
difference is ``TokenKeeper.approle_login`` (see ``auth.py``). At start-up the keeper logs
in, so authentication and capabilities are proved. ``creds check`` logs in with a plain,
reusable secret-id too (and revokes the token when it ends), but never unwraps a wrapped
secret-id nor spends one marked ``secret_id_uses: limited``: it then checks what it can without a
token (health, readable inputs, the wrapping token's lookup), and every key is ``unverified``.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from scoped_mcp.credentials.backends.interface import Finding, Status
from scoped_mcp.credentials.backends.vault.auth import TokenKeeper
from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.errors import BackendUnavailable, CredentialError
from scoped_mcp.net.loopback import is_loopback_host as _loopback

SHORT_LEASE_SECONDS = 30.0
"""A token or lease living less than this may expire during one tool call."""
SESSION_SECONDS = 3600.0
"""A token that cannot live this long ends before a working session does."""
HEALTH_PARAMS = {"sealedcode": 200, "uninitcode": 200, "standbycode": 200, "perfstandbyok": "true"}
_TOKEN_FACTS = ("ttl", "renewable", "policies", "type", "explicit_max_ttl", "num_uses")


@dataclass(slots=True)
class AuthState:
    """What authentication showed: a token's facts after a login, or why there was none."""

    logged_in: bool
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def finding_from(exc: CredentialError, facts: Mapping[str, Any]) -> Finding:
    """A finding for a failure, keeping the facts gathered before it."""
    return Finding.failed(exc, facts)


def health(keeper: TokenKeeper, addr: str, facts: dict[str, Any]) -> None:
    """sys/health (no token) into ``facts``; a sealed or uninitialised server is unreachable."""
    answer = keeper.call("GET", "sys/health", params=HEALTH_PARAMS, authenticated=False) or {}
    facts.update({k: answer.get(k) for k in ("initialized", "sealed", "standby", "version")})
    if answer.get("sealed"):
        raise BackendUnavailable(f"vault sealed at {addr}", fix="unseal it: bao operator unseal")
    if answer.get("initialized") is False:
        raise BackendUnavailable(
            f"vault at {addr} is not initialized", fix="initialize it: bao operator init"
        )


def authenticate(keeper: TokenKeeper, spec: VaultSpec) -> AuthState:
    """Prove the broker's token (lookup-self), or, when a login would spend what it must not,
    check the AppRole inputs without one."""
    state = AuthState(logged_in=False, facts={"auth": spec.auth})
    if spec.auth == "approle" and keeper.approle_login != "unwrap" and not keeper.holds_token:
        state.facts.update(keeper.inspect_secret_id())
        kind = state.facts["secret_id"]
        if kind == "wrapped" or keeper.approle_login == "never":
            state.warnings = _no_login_warnings(kind, state.facts)
            return state
    identity = keeper.call("GET", "auth/token/lookup-self")["data"]
    state.logged_in = True
    state.facts.update({f"token_{k}": identity.get(k) for k in _TOKEN_FACTS})
    state.facts["token_max_life"] = max_life(identity)
    role = (identity.get("meta") or {}).get("role_name")
    state.warnings = token_warnings(spec, state.facts, role=str(role) if role else None)
    return state


def max_life(identity: Mapping[str, Any]) -> float | None:
    """The most seconds the token can still live, when lookup-self shows it (else None)."""
    ttl = float(identity.get("ttl") or 0)
    if ttl <= 0:
        return None  # never expires (a root or periodic-less token without TTL)
    if not identity.get("renewable"):
        return ttl
    explicit = float(identity.get("explicit_max_ttl") or 0)
    created = float(identity.get("creation_time") or 0)
    if explicit > 0 and created > 0:
        return max(0.0, created + explicit - time.time())
    return None  # bounded only by the role's or the mount's max TTL, which it does not show


def token_warnings(
    spec: VaultSpec, facts: Mapping[str, Any], *, role: str | None = None
) -> list[str]:
    """Warnings about the broker's token: short TTL, short life, limited uses."""
    found = []
    ttl = float(facts.get("token_ttl") or 0)
    if 0 < ttl < SHORT_LEASE_SECONDS:
        found.append(
            f"the token's TTL is {ttl:.0f}s, shorter than a tool call may take "
            f"({SHORT_LEASE_SECONDS:.0f}s)"
        )
    life = facts.get("token_max_life")
    if spec.auth == "token" and life is not None and life < SESSION_SECONDS:
        found.append(
            f"the token can live at most {_duration(life)} more (not renewable or explicit max "
            f"TTL), shorter than a working session ({_duration(SESSION_SECONDS)}): give "
            "scoped-mcp a longer-lived token, or use auth: approle"
        )
    limit = spec.lease_ttl
    if spec.auth == "approle" and ttl > limit and not facts.get("token_renewable"):
        found.append(
            f"the token lives {_duration(ttl)} and is not renewable, so the broker cannot hold it "
            f"to lease_ttl ({_duration(limit)}): a crashed server leaves it usable that long; "
            f"fix: bao write auth/{spec.approle_mount.strip('/')}/role/{role or '<role>'} "
            f"token_ttl={int(limit)}s token_type=service"
        )
    uses = int(facts.get("token_num_uses") or 0)
    if uses:
        found.append(f"the token has {uses} uses left: it stops working after that many requests")
    return found


def no_login_reason(facts: Mapping[str, Any]) -> str:
    """Why a check did not log in, in a few words."""
    if facts.get("secret_id") == "wrapped":
        return "the secret-id is response-wrapped"
    return "the secret-id is limited-use"


def _no_login_warnings(kind: str, facts: Mapping[str, Any]) -> list[str]:
    if kind == "wrapped":
        return [
            "AppRole login skipped: the secret-id is response-wrapped "
            f"(the wrapping token is live, {_wrap_left(facts)}) and a check never unwraps it; "
            "the keys, the token's policies and capabilities are proved at server start-up"
        ]
    found = [
        "AppRole login skipped: credentials.vault.secret_id_uses is limited, and a login would "
        "use up one of the secret-id's uses; the keys, the token's policies and capabilities "
        "are proved at server start-up"
    ]
    if kind == "unknown":
        found.append(
            "the secret-id is neither a plain secret-id (a UUID) nor a live wrapping token: "
            "if it was wrapped, it expired or was already unwrapped (if not by you, treat it "
            "as stolen)"
        )
    return found


def _wrap_left(facts: Mapping[str, Any]) -> str:
    try:
        created = datetime.datetime.fromisoformat(str(facts.get("wrap_created")))
        ttl = float(facts.get("wrap_ttl") or 0)
    except ValueError:
        return "lifetime unknown"
    left = ttl - (datetime.datetime.now(datetime.UTC) - created).total_seconds()
    return f"{_duration(max(0.0, left))} left to start the server"


def capabilities(keeper: TokenKeeper, paths: Sequence[str]) -> dict[str, list[str]]:
    """The token's capabilities on every path, in one sys/capabilities-self request."""
    unique = sorted(set(paths))
    answer = keeper.call(
        "POST", "sys/capabilities-self", json={"paths": unique}, capability="update"
    )
    data = answer.get("data") or answer
    return {p: [str(c) for c in data.get(p, [])] for p in unique}


def allows(found: Sequence[str], capability: str) -> bool:
    """Whether a capability list grants ``capability`` (root grants everything)."""
    return "root" in found or (capability in found and "deny" not in found)


def tls_facts(addr: str, spec: VaultSpec) -> tuple[dict[str, Any], list[str]]:
    """Scheme and CA of the address; a warning for plain HTTP beyond this machine."""
    nodes = [urlsplit(node.strip()) for node in addr.split(",")]  # a cluster: every node
    facts: dict[str, Any] = {
        "scheme": nodes[0].scheme,
        "ca_cert": str(spec.ca_cert) if spec.ca_cert else None,
    }
    clear = [n for n in nodes if n.scheme != "https" and not _loopback(n.hostname or "")]
    if not clear:
        return facts, []
    return facts, [
        f"vault at {n.geturl()} is reached without TLS: the token crosses the network in clear "
        "(use https://)"
        for n in clear
    ]


def describe(keeper: TokenKeeper, addr: str, spec: VaultSpec) -> Finding:
    """Once per backend: address and TLS, health, authentication and the token's lifetime."""
    tls, warnings = tls_facts(addr, spec)
    facts: dict[str, Any] = {"addr": addr, **tls}
    try:
        health(keeper, addr, facts)
        auth = authenticate(keeper, spec)
    except CredentialError as exc:
        facts["warnings"] = warnings
        return finding_from(exc, facts)
    facts.update(auth.facts)
    facts["warnings"] = warnings + auth.warnings
    status: Status = "insecure" if warnings else "ok"
    return Finding(status, summary(facts, logged_in=auth.logged_in), facts=facts)


def summary(facts: Mapping[str, Any], *, logged_in: bool) -> str:
    """One human line: where, TLS, health, and the token (or why there is none)."""
    if facts.get("scheme") == "https":
        tls = f"TLS, CA {facts['ca_cert']}" if facts.get("ca_cert") else "TLS, system CAs"
    else:
        tls = "no TLS"
    state = "standby" if facts.get("standby") else "active"
    line = f"{facts['addr']} ({tls}), version {facts.get('version')}, unsealed, {state}"
    if not logged_in:
        return f"{line}; auth {facts['auth']}: {facts.get('secret_id')} secret-id, no login"
    ttl = float(facts.get("token_ttl") or 0)
    lifetime = "never expires" if ttl <= 0 else f"ttl {_duration(ttl)}"
    renew = "renewable" if facts.get("token_renewable") else "not renewable"
    policies = ", ".join(facts.get("token_policies") or []) or "none"
    return f"{line}; auth {facts['auth']}: token {lifetime}, {renew}, policies {policies}"


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 120:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
