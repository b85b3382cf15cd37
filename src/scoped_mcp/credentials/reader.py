"""Reads one key's source through its backend, for the broker: the only place it calls ``fetch``.

A static source read without the key's field counts as the key missing. A failure is renamed after
the key (``PW unavailable: vault unreachable at ...``), reported as a ``failed`` event with its
text scrubbed, and raised as the same kind of ``CredentialError``. An optional key found missing is
not asked for again (nor reported again) until the TTL has passed, so a module may probe it on
every call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from scoped_mcp.credentials.backends.interface import Fetched, SecretBackend
from scoped_mcp.credentials.plan import KeyPlan
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import BackendUnavailable, CredentialError, SecretNotFound


class SourceReader:
    """Fetches sources for one broker; counts the fetches it sends to backends."""

    def __init__(
        self,
        backends: Mapping[str, SecretBackend],
        *,
        ttl: float,
        clock: Callable[[], float],
        scrub: Callable[[str], str],
        event: Callable[..., None],
    ) -> None:
        self._backends = backends
        self._ttl = ttl
        self._clock = clock
        self._scrub = scrub
        self._event = event
        # Optional keys found missing: (scheme, path, field) -> when to ask the backend again.
        self._absent: dict[tuple[str, str, str | None], float] = {}
        self.fetch_count = 0

    def __repr__(self) -> str:
        return f"SourceReader(fetches={self.fetch_count})"

    def backend_for(self, ref: SecretRef) -> SecretBackend:
        """The backend serving a reference's scheme."""
        backend = self._backends.get(ref.scheme)
        if backend is None:
            raise CredentialError(f"no secret backend for {ref.scheme!r} references")
        return backend

    def read(self, plan: KeyPlan) -> Fetched:
        """Every field of the plan's source (and its lease); errors name the key."""
        backend = self.backend_for(plan.ref)
        absent_key = (plan.ref.scheme, plan.ref.path, plan.ref.field)
        if not plan.required and self._clock() < self._absent.get(absent_key, 0.0):
            raise SecretNotFound(f"{plan.key} unavailable: not set (optional)")
        self.fetch_count += 1
        try:
            fetched = backend.fetch(plan.ref)
            if fetched.lease is None and plan.ref.field not in fetched.values:
                fetched.values.clear()
                raise SecretNotFound(f"field {plan.ref.field!r} not in {plan.ref}")
            return fetched
        except CredentialError as exc:
            if isinstance(exc, SecretNotFound) and not plan.required:
                self._absent[absent_key] = self._clock() + self._ttl
            self._event("failed", plan, error=self._scrub(exc.message), status=exc.status)
            if isinstance(exc, BackendUnavailable):
                raise BackendUnavailable(
                    f"{plan.key} unavailable: {exc.message}", fix=exc.fix
                ) from None
            raise type(exc)(f"{plan.key} unavailable: {exc.message}", fix=exc.fix) from None
