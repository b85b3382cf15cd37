"""The Vault backend's own token: explicit, sealed, renewed, re-acquired, revoked.

``TokenKeeper`` owns the broker's token and sends requests with it through ``Connection``
(``http.py``, where hvac errors are mapped). It logs in lazily (``auth: token`` reads the
token; ``auth: approle`` reads the role-id and, once, the secret-id, unwrapping it when it is a
response-wrapping token), renews the token at about two thirds of its TTL, logs in again when
renewal is refused or capped by max_ttl, and at ``close`` revokes what it obtained by login.
Everything secret it holds is sealed; a lock guards the token state, so the broker may call it
from several threads.

``approle_login`` is the one difference between the server's start-up and ``creds check``:

- ``"unwrap"`` (the server): log in, unwrapping a response-wrapped secret-id. The server keeps the
  token it gets, so spending the secret-id is what it is for.
- ``"plain-only"`` (``creds check``): log in with a plain secret-id, which is reusable by
  construction (the server logs in with it at every start and re-login); the token is revoked
  when the check ends. A wrapped secret-id is never unwrapped.
- ``"never"`` (``creds check`` with ``secret_id_uses: limited``): no AppRole login at all.
  ``inspect_secret_id`` says what can be known without one: the inputs are readable, and a
  wrapping token is looked up (which does not consume it), never unwrapped.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from scoped_mcp.credentials.backends.interface import EventSink, LoginSpend
from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.credentials.backends.vault.http import Connection
from scoped_mcp.credentials.backends.vault.login import LoginInputs, unwrap, wrapping_info
from scoped_mcp.credentials.lease import SealedSecret, Sealer
from scoped_mcp.errors import (
    AccessDenied,
    BackendMisconfigured,
    BackendUnavailable,
    CredentialError,
    SecretNotFound,
)

_log = logging.getLogger("scoped_mcp.credentials.backends.vault")
RENEW_FRACTION = 2 / 3
CAPPED_FRACTION = 2 / 3
"""A renewal that grants less than this share of the login TTL is capped by max_ttl."""
AppRoleLogin = LoginSpend
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


@dataclass(frozen=True, slots=True, repr=False)
class _Token:
    """The broker's token, sealed, with what is known about its lifetime."""

    sealed: SealedSecret
    accessor: str
    granted: float  # TTL at login; 0 means the token never expires
    ttl: float  # TTL at the last login, renewal or lookup
    renewable: bool
    since: float  # monotonic time of that login, renewal or lookup
    ours: bool  # obtained by AppRole login, so ours to revoke

    def __repr__(self) -> str:
        return f"_Token(accessor=…{self.accessor[-4:]}, ttl={self.ttl:.0f}, ours={self.ours})"

    @property
    def expires_at(self) -> float:
        return float("inf") if self.ttl <= 0 else self.since + self.ttl

    @property
    def renew_at(self) -> float:
        return float("inf") if self.ttl <= 0 else self.since + self.ttl * RENEW_FRACTION


class TokenKeeper:
    """Holds the broker's Vault token and makes authenticated requests with it."""

    def __init__(
        self,
        spec: VaultSpec,
        environ: Mapping[str, str],
        conn: Connection,
        *,
        clock: Callable[[], float] = time.monotonic,
        approle_login: AppRoleLogin = "unwrap",
    ) -> None:
        self._spec = spec
        self.approle_login: AppRoleLogin = approle_login
        self._conn = conn
        self._clock = clock
        self._sealer = Sealer()
        self._lock = threading.RLock()
        self._token: _Token | None = None
        self._retired: list[_Token] = []
        self._warned: set[str] = set()
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._sink: EventSink | None = None
        self._closed = False
        self._inputs = LoginInputs(spec, environ, self._sealer)
        self._secret_id: SealedSecret | None = None

    def __repr__(self) -> str:
        return f"TokenKeeper(auth={self._spec.auth!r}, token={self._token!r})"

    # -- events ------------------------------------------------------------------------------

    def attach_events(self, sink: EventSink) -> None:
        """Deliver token events to ``sink``, including those from before it was attached."""
        with self._lock:
            self._sink = sink
            pending, self._pending = self._pending, []
        for action, fields in pending:
            sink(action, **fields)

    def _emit(self, action: str, token: _Token, **fields: Any) -> None:
        record = {"backend": "vault", "auth": self._spec.auth, "accessor": token.accessor}
        record.update(fields)
        if self._sink is None:
            self._pending.append((action, record))
        else:
            self._sink(action, **record)

    # -- authenticated requests --------------------------------------------------------------

    def call(
        self,
        method: str,
        api_path: str,
        *,
        capability: str = "read",
        authenticated: bool = True,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """A request with the broker's token; a token found dead is replaced and retried once."""
        if not authenticated:
            return self._conn.request(method, api_path, token="", json=json, params=params)
        token = self.current()
        try:
            return self._send(
                token, method, api_path, capability=capability, json=json, params=params
            )
        except AccessDenied:
            if self._alive(token):
                raise
        token = self._replace_dead(token)
        return self._send(token, method, api_path, capability=capability, json=json, params=params)

    def _send(
        self,
        token: _Token,
        method: str,
        api_path: str,
        *,
        capability: str = "read",
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        with self._sealer.open(token.sealed, context=b"token") as plain:
            return self._conn.request(
                method,
                api_path,
                token=plain.text(),
                capability=capability,
                json=json,
                params=params,
            )

    def _alive(self, token: _Token) -> bool:
        """Whether Vault still accepts ``token`` (a 403 can mean an expired token)."""
        try:
            self._send(token, "GET", "auth/token/lookup-self")
        except AccessDenied:
            return False
        return True

    def _replace_dead(self, dead: _Token) -> _Token:
        with self._lock:
            if self._token is not None and self._token is not dead:
                return self._token
            self._token = None
            self._emit("token_invalid", dead)
            return self.current()

    def current(self) -> _Token:
        """A token usable now: logging in first, renewing or replacing it when due."""
        with self._lock:
            if self._closed:
                raise BackendUnavailable("the vault backend is closed (server shutting down)")
            token = self._token
            if token is None:
                token = self._token = self._authenticate()
                self._emit("token_login", token, ttl=token.ttl, renewable=token.renewable)
                return token
            if self._clock() < token.renew_at:
                return token
            return self._refresh(token)

    # -- lifecycle ---------------------------------------------------------------------------

    def maintain(self) -> None:
        """Renew or replace the token when due; the broker's background loop calls this."""
        with self._lock:
            now = self._clock()
            self._retired = [t for t in self._retired if t.expires_at > now]
            if self._token is not None and not self._closed and now >= self._token.renew_at:
                self._refresh(self._token)

    def _refresh(self, token: _Token) -> _Token:
        """Renew ``token``; when that is refused or capped, log in again (AppRole)."""
        if token.renewable:
            try:
                renewed = self._renew(token)
            except BackendUnavailable:
                if self._clock() < token.expires_at:
                    return token  # still valid; try again on the next call or maintenance
                raise
            except CredentialError:
                renewed = None
            if renewed is not None:
                self._token = renewed
                self._emit("token_renewed", renewed, ttl=renewed.ttl)
                return renewed
        try:
            if self._spec.auth == "approle":
                return self._relogin(token)
            return self._recheck_operator_token(token)
        except BackendUnavailable:
            if self._clock() < token.expires_at:
                return token
            raise

    def _relogin(self, token: _Token) -> _Token:
        new = self._login()
        self._retired.append(token)  # revoked at close; its leases live until it expires
        self._token = new
        self._emit("token_login", new, ttl=new.ttl, replaces=token.accessor)
        return new

    def _renew(self, token: _Token) -> _Token | None:
        answer = self._send(
            token,
            "POST",
            "auth/token/renew-self",
            capability="update",
            json={"increment": max(1, int(token.granted))},
        )
        auth = answer["auth"]
        ttl = float(auth["lease_duration"])
        if ttl < token.granted * CAPPED_FRACTION:
            return None  # capped by max_ttl: a fresh login gives the full TTL again
        return replace(token, ttl=ttl, renewable=bool(auth["renewable"]), since=self._clock())

    def _recheck_operator_token(self, token: _Token) -> _Token:
        """``auth: token``: take a newer token from the source, or warn that this one runs out."""
        fresh = self._authenticate()
        self._token = fresh
        if fresh.accessor != token.accessor:
            self._emit("token_login", fresh, ttl=fresh.ttl, replaces=token.accessor)
        elif fresh.accessor not in self._warned:
            self._warned.add(fresh.accessor)
            source = self._inputs.source_name("token")
            _log.warning(
                "the vault token (auth: token) cannot be renewed and will expire; give "
                f"scoped-mcp a fresh one in {source} or use auth: approle",
                extra={"expires_in_s": round(fresh.ttl), "accessor": fresh.accessor},
            )
            self._emit("token_expiring", fresh, ttl=fresh.ttl)
        return fresh

    def close(self) -> None:
        """Revoke every token obtained by login (bounded by the request timeout each)."""
        with self._lock:
            self._closed = True
            tokens = [t for t in [*self._retired, self._token] if t is not None and t.ours]
            self._token, self._retired = None, []
            for token in tokens:
                try:
                    self._send(token, "POST", "auth/token/revoke-self", capability="update")
                except CredentialError as exc:
                    if self._clock() < token.expires_at:
                        _log.warning(
                            "could not revoke the vault token",
                            extra={"accessor": token.accessor, "error": exc.message},
                        )
                        self._emit("failed", token, status=exc.status, error=exc.message)
                    continue
                self._emit("token_revoked", token)
            self._inputs.drop()
            self._secret_id = None
        self._conn.close()

    # -- login -------------------------------------------------------------------------------

    def _authenticate(self) -> _Token:
        if self._spec.auth == "approle":
            return self._login()
        text = self._inputs.read("token")
        where = self._inputs.source_name("token")
        try:
            answer = self._conn.request("GET", "auth/token/lookup-self", token=text)
        except AccessDenied:
            raise AccessDenied(
                f"vault at {self._conn.addr} refused the token from {where} (invalid or expired)",
                fix=f"put a valid token in {where}, or use auth: approle",
            ) from None
        data = answer["data"]
        return self._adopt(text, data, ours=False)

    @property
    def holds_token(self) -> bool:
        """Whether a token (or an unwrapped secret-id) is already at hand: no input to spend."""
        return self._token is not None or self._secret_id is not None

    def inspect_secret_id(self) -> dict[str, Any]:
        """AppRole inputs as far as they can be known without a login: facts, never a value.

        The role-id and secret-id must be readable; a wrapping token is looked up, not unwrapped.
        """
        self._inputs.read("role_id")
        given = self._inputs.read("secret_id")
        info = wrapping_info(self._conn, given)
        if info is not None:
            created = str(info.get("creation_path") or "")
            return {
                "secret_id": "wrapped",
                "wrap_creation_path": created,
                "wrap_ttl": info.get("creation_ttl"),
                "wrap_created": info.get("creation_time"),
            }
        if _UUID.fullmatch(given):
            return {"secret_id": "plain"}
        return {"secret_id": "unknown"}

    def _login(self) -> _Token:
        if self.approle_login == "never":
            raise BackendMisconfigured(
                "no AppRole login in a check: the secret-id is limited-use "
                "(credentials.vault.secret_id_uses: limited)",
                fix="none needed: the server logs in at start-up",
            )
        role_id = self._inputs.read("role_id")
        secret_id = self._real_secret_id()
        mount = self._spec.approle_mount.strip("/")
        try:
            answer = self._conn.request(
                "POST",
                f"auth/{mount}/login",
                token="",
                capability="update",
                json={"role_id": role_id, "secret_id": secret_id},
            )
        except (BackendMisconfigured, AccessDenied, SecretNotFound):
            raise AccessDenied(
                f"AppRole login at {self._conn.addr} (mount {mount}) was refused: the role-id or "
                "secret-id is invalid, expired or used up, or a wrapped secret-id was already "
                "unwrapped by someone else",
                fix="issue a new secret-id (bao write -f auth/approle/role/<role>/secret-id) "
                f"and give it to scoped-mcp in {self._inputs.source_name('secret_id')}",
            ) from None
        auth = answer["auth"]
        data = {
            "accessor": auth["accessor"],
            "ttl": auth["lease_duration"],
            "renewable": auth["renewable"],
        }
        return self._shorten(self._adopt(str(auth["client_token"]), data, ours=True))

    def _shorten(self, token: _Token) -> _Token:
        """Hold a login token to ``lease_ttl`` (renew-self with that increment), whatever the
        role's token_ttl: the token itself then dies that soon after the last renewal, so a
        server killed without revoking it leaves it usable for no longer (a child token would
        not do: its parent would outlive the process). Not renewable: logged, kept as is."""
        limit = self._spec.lease_ttl
        if token.ttl <= 0 or token.ttl <= limit:
            return token
        if not token.renewable:
            _log.warning(
                "the vault token is not renewable, so it cannot be held to lease_ttl: it stays "
                "usable after a crash for its whole TTL",
                extra={"ttl_s": round(token.ttl), "lease_ttl_s": limit},
            )
            return token
        try:
            answer = self._send(
                token,
                "POST",
                "auth/token/renew-self",
                capability="update",
                json={"increment": max(1, int(limit))},
            )
            ttl = float(answer["auth"]["lease_duration"])
        except (CredentialError, KeyError, TypeError, ValueError):
            _log.warning(
                "could not shorten the vault token to lease_ttl (renew-self refused)",
                extra={"ttl_s": round(token.ttl), "lease_ttl_s": limit},
            )
            return token
        return replace(token, granted=min(limit, ttl), ttl=ttl, since=self._clock())

    def _adopt(self, text: str, data: Mapping[str, Any], *, ours: bool) -> _Token:
        ttl = float(data.get("ttl") or 0)
        return _Token(
            sealed=self._sealer.seal(text, context=b"token"),
            accessor=str(data.get("accessor") or ""),
            granted=float(data.get("creation_ttl") or ttl),
            ttl=ttl,
            renewable=bool(data.get("renewable")),
            since=self._clock(),
            ours=ours,
        )

    def _real_secret_id(self) -> str:
        """The secret-id: read from its source once, unwrapped if it is a wrapping token."""
        if self._secret_id is None:
            given = self._inputs.read("secret_id")
            wrapped = wrapping_info(self._conn, given) is not None
            if wrapped and self.approle_login != "unwrap":
                raise BackendMisconfigured(
                    "the secret-id is response-wrapped: a check never unwraps it (the server "
                    "could not start after that)",
                    fix="none needed: the server unwraps it at start-up",
                )
            self._inputs.drop("secret_id")
            real = unwrap(self._conn, given) if wrapped else given
            self._secret_id = self._sealer.seal(real, context=b"secret_id")
        with self._sealer.open(self._secret_id, context=b"secret_id") as plain:
            return plain.text()
