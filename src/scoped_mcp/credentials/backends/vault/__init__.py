"""Vault/OpenBao backend: ``vault:`` KV v1/v2 secrets and ``vault-dynamic:`` leased secrets.

Invariants this file keeps:

- Every hvac client gets its token passed explicitly, as a ``str`` (``""`` before login), never
  ``None``: ``hvac.Client(token=None)`` falls back to ``$VAULT_TOKEN`` and then
  ``~/.vault-token``, which would let an operator's ambient token stand in for the broker's own.
  The HTTP session ignores the environment too (no proxy, netrc or CA bundle from env vars), and
  the TLS client certificate is the manifest's (``client_cert``/``client_key``), never hvac's
  ``$VAULT_CLIENT_CERT``/``$VAULT_CLIENT_KEY``.
- The broker's token, and the AppRole role-id and secret-id kept for re-login, are sealed
  (``Sealer``). A client holding the plaintext token lives for one request.
- Login is lazy; ``check`` (the start-up preflight) proves that it works. The token is renewed
  at about two thirds of its TTL and replaced by a new AppRole login when renewal is refused or
  capped by max_ttl.
- ``close`` revokes every token this backend obtained by AppRole login. A token given with
  ``auth: token`` belongs to the operator and is never revoked.
- hvac and requests errors become ``CredentialError``s in ``http._vault_errors`` only; no
  message carries a response body or an exception text.

The manifest block is ``config.py``; the token's life cycle ``auth.py`` (its login inputs
``login.py``); HTTP and error mapping ``http.py``; the preflight ``check.py``. This file reads
secrets and manages leases. Importing it does not import hvac: ``Connection`` does, when built.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from scoped_mcp.credentials.backends.interface import (
    BackendContext,
    EventSink,
    Fetched,
    Finding,
    SecretBackend,
)
from scoped_mcp.credentials.backends.vault import check as vault_check
from scoped_mcp.credentials.backends.vault import leash
from scoped_mcp.credentials.backends.vault.auth import AppRoleLogin, TokenKeeper
from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.credentials.backends.vault.http import INSTALL_FIX, Connection, policy_fix
from scoped_mcp.credentials.lease import LeaseInfo
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import (
    AccessDenied,
    BackendMisconfigured,
    CredentialError,
    ManifestError,
    SecretNotFound,
)

if TYPE_CHECKING:
    from pydantic import BaseModel


class VaultBackend(SecretBackend):
    """Reads KV and dynamic secrets from one Vault/OpenBao server with the broker's own token."""

    schemes: ClassVar[tuple[str, ...]] = ("vault", "vault-dynamic")
    config_block: ClassVar[str | None] = "vault"
    config_model: ClassVar[type[BaseModel] | None] = VaultSpec
    field_required: ClassVar[bool] = True
    source_field: ClassVar[str | None] = "path"
    source_needs: ClassVar[str] = "source: vault needs vault.path (the KV secret holding the keys)"

    @classmethod
    def from_manifest(cls, settings: BaseModel | None, context: BackendContext) -> VaultBackend:
        """The backend for ``credentials.vault``, which any vault reference requires."""
        if settings is None:
            raise ManifestError(
                "credentials.vault: required when any key uses a vault: or vault-dynamic: "
                "reference",
                fix="add credentials.vault with addr and auth (see docs/credentials.md)",
            )
        assert isinstance(settings, VaultSpec)
        return cls(settings, context.environ, approle_login=context.login)

    def __init__(
        self, spec: VaultSpec, environ: Mapping[str, str], *, approle_login: AppRoleLogin = "unwrap"
    ) -> None:
        self._spec = spec
        nodes = spec.addresses(environ)
        self._addr = ", ".join(nodes)
        self._problem: CredentialError | None = None
        self._lease_ttl: dict[str, float] = {}
        self._lease_lock = threading.Lock()
        self._warned: set[tuple[str, str]] = set()
        self._conn: Connection | None = None
        self._auth: TokenKeeper | None = None
        if not self._addr:
            self._problem = BackendMisconfigured(
                "credentials.vault.addr is not set, nor VAULT_ADDR or BAO_ADDR",
                fix="set credentials.vault.addr: https://vault.example:8200 in the manifest",
            )
            return
        try:
            self._conn = Connection(spec, nodes)
        except ImportError:
            self._problem = BackendMisconfigured(
                "the vault backend needs hvac, which is not installed", fix=INSTALL_FIX
            )
            return
        except CredentialError as exc:  # the client certificate's key file is not private
            self._problem = exc
            return
        if approle_login == "plain-only" and spec.secret_id_uses == "limited":  # noqa: S105 - a mode
            approle_login = "never"  # each check would use up one of the secret-id's uses
        self._auth = TokenKeeper(spec, environ, self._conn, approle_login=approle_login)

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
        lease = leash.short_lease(
            self, LeaseInfo(lease_id, duration, bool(answer.get("renewable")))
        )
        with self._lease_lock:
            self._lease_ttl[lease_id] = min(duration, self._spec.lease_ttl)
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

    @property
    def lease_ttl(self) -> float:
        """The most seconds a lease or login token of ours is renewed for."""
        return self._spec.lease_ttl

    def warn_once(self, path: str, message: str, **extra: object) -> None:
        """An ops-log warning about a lease path, once per path and message."""
        if (path, message) not in self._warned:
            self._warned.add((path, message))
            leash.warn(path, message, **extra)

    def renew(self, lease: LeaseInfo, *, increment: float | None = None) -> LeaseInfo:
        """Renew a dynamic lease by its TTL, at most lease_ttl; Vault may grant less (max_ttl)."""
        if increment is None:
            with self._lease_lock:
                increment = self._lease_ttl.get(lease.lease_id, min(lease.ttl, self.lease_ttl))
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
        return self.check_many([ref])[0]

    def check_many(self, refs: Sequence[SecretRef]) -> list[Finding]:
        """``check`` for many references: one health, one lookup-self, one capabilities request.

        Without a login (``creds check`` with a wrapped or limited-use AppRole secret-id, which
        it must not spend) each key is ``unverified``, with the reason.
        """
        base: dict[str, Any] = {"addr": self._addr}
        try:
            keeper = self._keeper()
            vault_check.health(keeper, self._addr, base)
            auth = vault_check.authenticate(keeper, self._spec)
            if not auth.logged_in:
                detail = (
                    f"vault reachable at {self._addr}; not verified: no AppRole login "
                    f"({vault_check.no_login_reason(auth.facts)}), so not read"
                )
                facts = {**base, "verified": False}
                return [Finding("unverified", detail, facts=dict(facts)) for _ in refs]
            base.update(token_ttl=auth.facts["token_ttl"], policies=auth.facts["token_policies"])
            wanted = [self.api_path(ref) for ref in refs]
            dynamic = sorted({ref.path.strip("/") for ref in refs if ref.scheme != "vault"})
            wanted += [_revoke_path(p) for p in dynamic] + (["sys/leases/renew"] if dynamic else [])
            caps = vault_check.capabilities(keeper, wanted)
        except CredentialError as exc:
            return [vault_check.finding_from(exc, base) for _ in refs]
        reads: dict[str, set[str] | CredentialError] = {}
        warned: set[str] = set()
        return [self._check_ref(ref, base, caps, reads, warned) for ref in refs]

    def _check_ref(
        self,
        ref: SecretRef,
        base: Mapping[str, Any],
        caps: Mapping[str, list[str]],
        reads: dict[str, set[str] | CredentialError],
        warned: set[str],
    ) -> Finding:
        api_path = self.api_path(ref)
        facts = {**base, "capabilities": caps[api_path]}
        try:
            if not vault_check.allows(caps[api_path], "read"):
                policies = ", ".join(base.get("policies") or []) or "none"
                raise AccessDenied(
                    f"the broker's token (policies {policies}) may not read {api_path}",
                    fix=policy_fix(api_path, "read"),
                )
            if ref.scheme == "vault":
                self._check_field(ref, api_path, reads)
        except CredentialError as exc:
            return vault_check.finding_from(exc, facts)
        if ref.scheme == "vault":
            return Finding("ok", f"KV field readable at {self._addr}", facts=facts)
        if api_path not in warned:
            warned.add(api_path)
            facts["warnings"] = _lease_warnings(api_path, caps)
        # The capability says the token may ask; only issuing proves the role exists.
        return Finding(
            "unverified",
            f"the token may read {api_path} at {self._addr}; not issued, so the role is "
            "not proved (creds check --deep issues and revokes one)",
            facts=facts,
        )

    def describe(self) -> Finding:
        """Once per backend: address and TLS, health, authentication, the token's lifetime."""
        try:
            keeper = self._keeper()
        except CredentialError as exc:
            return vault_check.finding_from(exc, {"addr": self._addr})
        return vault_check.describe(keeper, self._addr, self._spec)

    def _check_field(
        self, ref: SecretRef, api_path: str, reads: dict[str, set[str] | CredentialError]
    ) -> None:
        """The KV secret exists and has the field (each secret read once per check)."""
        if api_path not in reads:
            try:
                reads[api_path] = {str(k) for k in self._kv_values(self._read(api_path), ref)}
            except SecretNotFound:
                reads[api_path] = SecretNotFound(
                    f"no KV secret at {ref.path} in vault at {self._addr}"
                )
            except CredentialError as exc:
                reads[api_path] = exc
        names = reads[api_path]
        if isinstance(names, CredentialError):
            fix = self._put_fix(ref) if isinstance(names, SecretNotFound) else names.fix
            raise type(names)(names.message, fix=fix)
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

    def request(
        self,
        method: str,
        api_path: str,
        *,
        capability: str = "read",
        json: Mapping[str, Any] | None = None,
    ) -> Any:
        """One request with the broker's token, for a writable store on Vault (OAuth grants)."""
        return self._keeper().call(method, api_path, capability=capability, json=json)

    def _keeper(self) -> TokenKeeper:
        if self._problem is not None:
            raise type(self._problem)(self._problem.message, fix=self._problem.fix)
        assert self._auth is not None
        return self._auth


def _revoke_path(path: str) -> str:
    """A path under which the policy must allow revoking this source's leases."""
    return f"sys/leases/revoke/{path}/lease"


def _lease_warnings(api_path: str, caps: Mapping[str, list[str]]) -> list[str]:
    """Dynamic leases the token could issue but not revoke or renew."""
    found = []
    if not vault_check.allows(caps[_revoke_path(api_path)], "update"):
        fix = policy_fix(f"sys/leases/revoke/{api_path}/*", "update")
        found.append(
            f"the token may not revoke leases of {api_path} (they outlive the server): {fix}"
        )
    if not vault_check.allows(caps["sys/leases/renew"], "update"):
        fix = policy_fix("sys/leases/renew", "update")
        found.append(
            "the token may not renew leases, so they cannot be held to lease_ttl: each lives "
            f"its role's whole default_ttl, also after a crash: {fix}"
        )
    return found


def _stringify(data: Mapping[str, Any]) -> dict[str | None, str]:
    """Field values as text; non-string values as JSON."""
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
