"""Vault/OpenBao backend: ``vault:`` KV v1/v2 secrets and ``vault-dynamic:`` leased secrets.

Invariants this file keeps:

- Every hvac client gets its token passed explicitly, as a ``str`` (``""`` before login), never
  ``None``: ``hvac.Client(token=None)`` falls back to ``$VAULT_TOKEN`` and then
  ``~/.vault-token``, which would let an operator's ambient token stand in for the broker's own.
  The HTTP session ignores the environment too (no proxy, netrc or CA bundle from env vars).
- The broker's token, and the AppRole role-id and secret-id kept for re-login, are sealed
  (``Sealer``). A client holding the plaintext token lives for one request.
- Login is lazy; ``check`` (the start-up preflight) proves that it works. The token is renewed
  at about two thirds of its TTL and replaced by a new AppRole login when renewal is refused or
  capped by max_ttl.
- ``close`` revokes every token this backend obtained by AppRole login. A token given with
  ``auth: token`` belongs to the operator and is never revoked.
- hvac and requests errors become ``CredentialError``s in ``vault_http._vault_errors`` only; no
  message carries a response body or an exception text.

The token's lifecycle lives in ``vault_auth.py``, HTTP and error mapping in ``vault_http.py``;
this file reads secrets and manages leases.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from scoped_mcp.credentials.backends.interface import Fetched, Finding
from scoped_mcp.credentials.backends.vault_auth import TokenKeeper
from scoped_mcp.credentials.backends.vault_http import INSTALL_FIX, Connection, policy_fix
from scoped_mcp.credentials.lease import LeaseInfo
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import (
    AccessDenied,
    BackendMisconfigured,
    BackendUnavailable,
    CredentialError,
    SecretNotFound,
)
from scoped_mcp.manifest import VaultSpec

EventSink = Callable[..., None]
_HEALTH_PARAMS = {"sealedcode": 200, "uninitcode": 200, "standbycode": 200, "perfstandbyok": "true"}


class VaultBackend:
    """Reads KV and dynamic secrets from one Vault/OpenBao server with the broker's own token."""

    schemes: ClassVar[tuple[str, ...]] = ("vault", "vault-dynamic")

    def __init__(self, spec: VaultSpec, environ: Mapping[str, str]) -> None:
        self._spec = spec
        self._addr = spec.addr or environ.get("VAULT_ADDR") or environ.get("BAO_ADDR") or ""
        self._problem: CredentialError | None = None
        self._lease_ttl: dict[str, float] = {}
        self._lease_lock = threading.Lock()
        self._conn: Connection | None = None
        self._auth: TokenKeeper | None = None
        if not self._addr:
            self._problem = BackendMisconfigured(
                "credentials.vault.addr is not set, nor VAULT_ADDR or BAO_ADDR",
                fix="set credentials.vault.addr: https://vault.example:8200 in the manifest",
            )
            return
        try:
            self._conn = Connection(spec, self._addr)
        except ImportError:
            self._problem = BackendMisconfigured(
                "the vault backend needs hvac, which is not installed", fix=INSTALL_FIX
            )
            return
        self._auth = TokenKeeper(spec, environ, self._conn)

    def __repr__(self) -> str:
        return f"VaultBackend(addr={self._addr!r}, auth={self._spec.auth!r})"

    def attach_events(self, sink: EventSink) -> None:
        """Send token events (login, renewal, revocation: accessors, never tokens) to ``sink``."""
        if self._auth is not None:
            self._auth.attach_events(sink)

    # -- reads -------------------------------------------------------------------------------

    def fetch(self, ref: SecretRef) -> Fetched:
        """Read a KV secret (every field, no lease) or issue a dynamic secret (with its lease)."""
        api_path = self.api_path(ref)
        answer = self._read(api_path)
        if ref.scheme == "vault":
            return Fetched(self._kv_values(answer, ref), ttl=None)
        values = _stringify(answer.get("data") or {})
        lease_id = str(answer.get("lease_id") or "")
        duration = float(answer.get("lease_duration") or 0)
        if not lease_id:
            # Some engines (KV v1 with a ttl field) state a duration without a lease to renew.
            return Fetched(values, ttl=duration or None)
        lease = LeaseInfo(lease_id, duration, bool(answer.get("renewable")))
        with self._lease_lock:
            self._lease_ttl[lease_id] = duration
        return Fetched(values, lease=lease)

    def api_path(self, ref: SecretRef) -> str:
        """The HTTP API path a reference reads (KV v2 inserts ``data/`` after the mount)."""
        path = ref.path.strip("/")
        if ref.scheme != "vault" or self._spec.kv_version == 1:
            return path
        mount, _, rest = path.partition("/")
        rest = rest.removeprefix("data/")
        return f"{mount}/data/{rest}"

    def _read(self, api_path: str) -> dict[str, Any]:
        answer = self._keeper().call("GET", api_path)
        if not isinstance(answer, dict):
            raise SecretNotFound(f"vault at {self._addr} returned no data at {api_path}")
        return answer

    def _kv_values(self, answer: dict[str, Any], ref: SecretRef) -> dict[str | None, str]:
        data = answer.get("data") or {}
        if self._spec.kv_version == 2:
            data = data.get("data") or {}
        if not data:
            raise SecretNotFound(
                f"the KV secret {ref.path} has no data (deleted?)", fix=self._put_fix(ref)
            )
        return _stringify(data)

    # -- leases ------------------------------------------------------------------------------

    def renew(self, lease: LeaseInfo) -> LeaseInfo:
        """Renew a dynamic lease by its original TTL; Vault may grant less (max_ttl)."""
        with self._lease_lock:
            increment = self._lease_ttl.get(lease.lease_id, lease.ttl)
        answer = self._keeper().call(
            "PUT",
            "sys/leases/renew",
            json={"lease_id": lease.lease_id, "increment": max(1, int(increment))},
            capability="update",
        )
        return LeaseInfo(
            str(answer.get("lease_id") or lease.lease_id),
            float(answer.get("lease_duration") or 0),
            bool(answer.get("renewable")),
            issued_at=lease.issued_at,
        )

    def revoke(self, lease: LeaseInfo) -> None:
        """Revoke a dynamic lease now (the path form, so a policy can limit it to our leases)."""
        self._keeper().call("PUT", f"sys/leases/revoke/{lease.lease_id}", capability="update")
        with self._lease_lock:
            self._lease_ttl.pop(lease.lease_id, None)

    def maintain(self) -> None:
        """Renew the broker's token at about 2/3 of its TTL, or log in again (broker's loop)."""
        if self._auth is not None:
            self._auth.maintain()

    def close(self) -> None:
        """Revoke the tokens obtained by AppRole login; an ``auth: token`` token is left alone."""
        if self._auth is not None:
            self._auth.close()

    # -- preflight ---------------------------------------------------------------------------

    def check(self, ref: SecretRef) -> Finding:
        """Prove health, login and read capability for ``ref``; no lease issued, nothing kept."""
        facts: dict[str, Any] = {"addr": self._addr}
        try:
            keeper = self._keeper()
            health = (
                keeper.call("GET", "sys/health", params=_HEALTH_PARAMS, authenticated=False) or {}
            )
            facts.update({k: health.get(k) for k in ("initialized", "sealed", "version")})
            if health.get("sealed"):
                raise BackendUnavailable(
                    f"vault sealed at {self._addr}", fix="unseal it: bao operator unseal"
                )
            identity = keeper.call("GET", "auth/token/lookup-self")["data"]
            facts.update(token_ttl=identity.get("ttl"), policies=identity.get("policies"))
            api_path = self.api_path(ref)
            capabilities = self._capabilities(api_path)
            facts["capabilities"] = capabilities
            if "root" not in capabilities and "read" not in capabilities:
                raise AccessDenied(
                    f"the broker's token (policies {', '.join(identity.get('policies') or [])}) "
                    f"may not read {api_path}",
                    fix=policy_fix(api_path, "read"),
                )
            if ref.scheme == "vault":
                self._check_field(ref, api_path)
        except CredentialError as exc:
            return Finding(exc.status, exc.message, exc.fix, facts=facts)  # type: ignore[arg-type]
        what = "KV field" if ref.scheme == "vault" else "dynamic secret path"
        return Finding("ok", f"{what} readable at {self._addr}", facts=facts)

    def _capabilities(self, api_path: str) -> list[str]:
        answer = self._keeper().call(
            "POST", "sys/capabilities-self", json={"paths": [api_path]}, capability="update"
        )
        found = answer.get(api_path, answer.get("capabilities", []))
        return [str(c) for c in found]

    def _check_field(self, ref: SecretRef, api_path: str) -> None:
        try:
            names = set(self._kv_values(self._read(api_path), ref))
        except SecretNotFound:
            raise SecretNotFound(
                f"no KV secret at {ref.path} in vault at {self._addr}", fix=self._put_fix(ref)
            ) from None
        if ref.field not in names:
            raise SecretNotFound(
                f"the KV secret {ref.path} has no field {ref.field!r}", fix=self._put_fix(ref)
            )

    def _put_fix(self, ref: SecretRef) -> str:
        mount, _, rest = ref.path.strip("/").partition("/")
        if self._spec.kv_version == 2:
            rest = rest.removeprefix("data/")
            return f"bao kv patch -mount={mount} {rest} {ref.field}=<value> (or kv put if new)"
        return (
            f"bao kv put -mount={mount} {rest} {ref.field}=<value> "
            "(KV v1 put replaces the secret: repeat its other fields)"
        )

    def _keeper(self) -> TokenKeeper:
        if self._problem is not None:
            raise type(self._problem)(self._problem.message, fix=self._problem.fix)
        assert self._auth is not None
        return self._auth


def _stringify(data: Mapping[str, Any]) -> dict[str | None, str]:
    """Field values as text; non-string values as JSON."""
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
