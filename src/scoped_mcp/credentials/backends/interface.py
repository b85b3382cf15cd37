"""The secret-backend interface: one small class per backend, synchronous, found by name.

Backends are synchronous (hvac, keyring and file reads are); the broker calls them off the event
loop. A backend never logs, returns or raises with a secret value in it.

``SecretBackend`` declares everything the broker, the preflight and ``creds check`` ask of a
backend, each optional hook with a default, so no caller looks a hook up by name. A backend class
also owns its part of the manifest: ``config_block``/``config_model`` (its settings under
``credentials:``), ``parse_ref`` (its reference rules) and ``default_ref`` (where a key lives when
``credentials.source`` names it). Every backend, built-in or not, is found through the
``scoped_mcp.secret_backends`` entry-point group (``backends/__init__.py``); the contract suite
``scoped_mcp.testing.secret_backend`` proves one with a single subclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import BaseModel, ValidationError

from scoped_mcp.credentials.lease import LeaseInfo
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import CredentialError, ManifestError

if TYPE_CHECKING:
    from scoped_mcp.identity import AgentContext

Status = Literal["ok", "unverified", "missing", "denied", "unreachable", "insecure", "broken"]
"""``ok`` only when the value was read (or its existence proven without reading it);
``unverified`` when the check could not look (no login allowed): a warning, never a failure."""
EventSink = Callable[..., None]
LoginSpend = Literal["unwrap", "plain-only", "never"]
"""What a backend's own login may spend: all it needs (the server: unwrap a wrapped secret-id),
only what can be used again (``creds check``: a reusable secret-id, never a wrapping token or a
limited-use one), or nothing at all. Vault's AppRole uses it."""


@dataclass(slots=True, repr=False)
class Fetched:
    """What one read of a source returned: every field of it, and its lease if it has one.

    ``values`` maps field name to value; a source with a single value (``env:NAME``) uses the key
    ``None``. The broker seals the values and drops this object at once.
    """

    values: dict[str | None, str]
    lease: LeaseInfo | None = None
    ttl: float | None = None

    def __repr__(self) -> str:
        return f"Fetched(fields={sorted(str(k) for k in self.values)}, lease={self.lease!r})"


@dataclass(slots=True)
class Finding:
    """The result of checking one reference without keeping its value."""

    status: Status
    detail: str = ""
    fix: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, exc: CredentialError, facts: Mapping[str, Any] | None = None) -> Finding:
        """The finding for a failure, keeping the facts gathered before it."""
        return cls(cast(Status, exc.status), exc.message, exc.fix, dict(facts or {}))


@dataclass(frozen=True, slots=True)
class BackendContext:
    """What every backend is built with besides its own settings."""

    agent_ctx: AgentContext
    environ: Mapping[str, str]
    login: LoginSpend = "unwrap"
    settings: Mapping[str, BaseModel] = field(default_factory=dict)
    """Every backend's validated settings by owner scheme, for a backend that reads its own
    inputs through other backends (``oauth-client:`` reads its client id and secret)."""


class SecretBackend(ABC):
    """Reads secrets from one kind of store; the defaults suit a store without leases.

    A third-party backend subclasses this, names its ``schemes``, implements ``fetch`` and
    ``check``, and is constructed as ``cls(settings, context)``: ``settings`` is its validated
    ``config_model`` (None when the manifest has no block for it), ``context`` a ``BackendContext``.
    """

    schemes: ClassVar[tuple[str, ...]] = ()
    """The reference schemes this backend serves (one instance serves them all)."""
    config_block: ClassVar[str | None] = None
    """The key under ``credentials:`` whose mapping ``config_model`` validates; None with a
    ``config_model`` means the model's fields sit in ``credentials:`` itself."""
    config_model: ClassVar[type[BaseModel] | None] = None
    """The pydantic model of this backend's manifest settings, validated at manifest load."""
    field_required: ClassVar[bool] = False
    """Whether a reference must name a field after ``#``."""
    source_field: ClassVar[str | None] = None
    """For ``credentials.source`` naming this backend: the settings field that names where every
    key lives (``vault.path``); each key is then a field of it. None: the key is the path."""
    source_needs: ClassVar[str] = ""
    """What to say when ``source_field`` is not set."""
    shares_reads: ClassVar[bool] = True
    """Whether one ``fetch`` returns every field of its path, so keys naming one path share one
    read (and one lease). False when a read returns only the field asked for (a keyring entry
    is one username): each field is then read, and cached, on its own."""

    # -- construction and references (class level: no backend instance is needed) -----------

    @classmethod
    def from_manifest(cls, settings: BaseModel | None, context: BackendContext) -> SecretBackend:
        """Build the backend for one server; built-ins override this to keep their signature."""
        factory = cast(Callable[[Any, BackendContext], SecretBackend], cls)
        return factory(settings, context)

    @classmethod
    def parse_ref(cls, scheme: str, path: str, field: str, *, text: str, where: str) -> SecretRef:
        """The reference ``scheme:path#field`` (``field`` may be empty); ManifestError if bad."""
        if cls.field_required and not field:
            raise ManifestError(
                f"{where}: {text!r} needs '#field' naming the field to use",
                fix=f"append the field, e.g. {text}#password",
            )
        return SecretRef(scheme, path, field or None)

    @classmethod
    def settings_or_default(cls, settings: BaseModel | None) -> BaseModel | None:
        """The validated settings, or the model's defaults when the manifest has no block."""
        if settings is not None or cls.config_model is None:
            return settings
        try:
            return cls.config_model()
        except ValidationError:  # the model has required fields: there is no default
            return None

    @classmethod
    def source_problem(cls, settings: BaseModel | None) -> str | None:
        """Why this backend cannot serve as ``credentials.source`` with these settings, if so."""
        if cls.source_field is None:
            return None
        if not getattr(cls.settings_or_default(settings), cls.source_field, None):
            return cls.source_needs or f"source: {cls.schemes[0]} needs {cls.source_field}"
        return None

    @classmethod
    def default_ref(
        cls, scheme: str, key: str, settings: BaseModel | None, agent_ctx: AgentContext
    ) -> SecretRef:
        """Where ``key`` lives when ``credentials.source`` is this backend and nothing names it:
        a field of the ``source_field`` place, or (without one) the path named like the key."""
        if cls.source_field is None:
            return SecretRef(scheme, key, None)
        where = getattr(cls.settings_or_default(settings), cls.source_field)
        return SecretRef(scheme, agent_ctx.expand(str(where)), key)

    # -- reading ------------------------------------------------------------------------------

    @abstractmethod
    def fetch(self, ref: SecretRef) -> Fetched:
        """Read the source ``ref`` points at; raise a ``CredentialError`` subclass on failure."""

    @abstractmethod
    def check(self, ref: SecretRef) -> Finding:
        """Say whether ``ref`` is usable, without issuing a lease or keeping the value."""

    def check_many(self, refs: Sequence[SecretRef]) -> list[Finding]:
        """``check`` for every reference; a backend that can batch (Vault) overrides it."""
        findings = []
        for ref in refs:
            try:
                findings.append(self.check(ref))
            except CredentialError as exc:
                findings.append(Finding.failed(exc))
        return findings

    def describe(self) -> Finding | None:
        """One finding about the backend itself for ``creds check`` (None: nothing to say)."""
        return None

    # -- leases and life cycle -------------------------------------------------------------------

    def renew(self, lease: LeaseInfo) -> LeaseInfo:
        """Extend a lease; return it with the new TTL. Backends without leases refuse."""
        raise NotImplementedError(f"{type(self).__name__} values have no lease")

    def revoke(self, lease: LeaseInfo) -> None:
        """End a lease now. Backends without leases refuse."""
        raise NotImplementedError(f"{type(self).__name__} values have no lease")

    def attach_events(self, sink: EventSink) -> None:
        """Send the backend's own events (Vault: token login, renewal) to ``sink``; key names and
        accessors only, never a value. A ``token_login`` with ``replaces`` moves its leases."""
        return None

    def maintain(self) -> None:
        """Background upkeep of the backend's own state (Vault: renew its token)."""
        return None

    def close(self) -> None:
        """Release what the backend holds (Vault: revoke its own token); may run twice."""
        return None
