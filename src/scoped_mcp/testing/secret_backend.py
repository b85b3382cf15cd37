"""Contract suite for secret backends: subclass ``SecretBackendContract`` in your tests.

    class TestMyBackend(SecretBackendContract):
        def make_backend(self): ...
        def provision(self, backend, name, value): ...   # store a secret, return its SecretRef
        def missing_ref(self, backend): ...              # a SecretRef that does not exist
        def absent_beside(self, backend, ref): ...       # optional: an absent key where ref is

A backend whose values have leases (``vault-dynamic:``) subclasses ``LeasedBackendContract``
instead and also implements ``leased_ref(backend)``, a reference whose every fetch issues a new
lease; its extra tests prove issue, renewal and revocation. (A static backend collects none of
them, so a CI that treats skips as failures needs no exemption.)

Every invariant the broker relies on is a test here; a backend that passes them all can be used by
the broker. Requires pytest.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import anyio
import pytest

from scoped_mcp.credentials.backends.interface import Fetched, SecretBackend
from scoped_mcp.credentials.broker import CredentialBroker
from scoped_mcp.credentials.plan import KeyPlan
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.credentials.view import ModuleCredentials
from scoped_mcp.errors import CredentialError, SecretNotFound
from scoped_mcp.redaction import Redactor


class SecretBackendContract:
    """Invariants every ``SecretBackend`` must keep."""

    static = True
    """True for backends whose values have no lease (renew/revoke raise NotImplementedError);
    False for leased backends, which implement ``leased_ref``."""

    def make_backend(self) -> SecretBackend:
        raise NotImplementedError

    def provision(self, backend: SecretBackend, name: str, value: str) -> SecretRef:
        raise NotImplementedError

    def missing_ref(self, backend: SecretBackend) -> SecretRef:
        raise NotImplementedError

    def absent_beside(self, backend: SecretBackend, ref: SecretRef) -> SecretRef:
        """A reference to an absent key that lives where ``ref`` does (the same file, item,
        service or KV secret); a backend whose keys are each their own source (``env:``) gives
        ``missing_ref``."""
        if ref.field is None:
            return self.missing_ref(backend)
        return SecretRef(ref.scheme, ref.path, "CONTRACT_ABSENT")

    @pytest.fixture
    def backend(self) -> Any:
        backend = self.make_backend()
        yield backend
        backend.close()

    @pytest.fixture
    def secret_value(self) -> str:
        return "s3cr3t-" + secrets.token_urlsafe(24)

    def test_is_a_secret_backend(self, backend: SecretBackend) -> None:
        """The backend subclasses SecretBackend and names its schemes."""
        assert isinstance(backend, SecretBackend)
        assert backend.schemes

    def test_fetch_returns_the_provisioned_value(
        self, backend: SecretBackend, secret_value: str
    ) -> None:
        """A provisioned secret comes back unchanged under the reference's field."""
        ref = self.provision(backend, "CONTRACT_KEY", secret_value)
        assert backend.fetch(ref).values[ref.field] == secret_value

    def test_missing_secret_raises_secret_not_found(self, backend: SecretBackend) -> None:
        """A reference to nothing raises SecretNotFound, a CredentialError."""
        with pytest.raises(SecretNotFound) as info:
            backend.fetch(self.missing_ref(backend))
        assert isinstance(info.value, CredentialError)

    def test_check_reports_ok_and_missing(self, backend: SecretBackend, secret_value: str) -> None:
        """check() says ok for a provisioned secret and missing for an absent one."""
        ref = self.provision(backend, "CONTRACT_KEY", secret_value)
        assert backend.check(ref).status == "ok"
        assert backend.check(self.missing_ref(backend)).status == "missing"

    def test_no_value_in_reprs_findings_or_errors(
        self, backend: SecretBackend, secret_value: str
    ) -> None:
        """Neither reprs, check findings nor error texts ever contain a secret value."""
        ref = self.provision(backend, "CONTRACT_KEY", secret_value)
        fetched = backend.fetch(ref)
        finding = backend.check(ref)
        texts = [repr(backend), str(backend), repr(fetched), repr(finding), finding.detail]
        texts.append(str(finding.fix))
        try:
            backend.fetch(self.missing_ref(backend))
        except CredentialError as exc:
            texts += [str(exc), exc.diagnostics()]
        assert not [text for text in texts if secret_value in text]

    @pytest.mark.parametrize("first", ["present", "absent"])
    def test_an_absent_optional_key_is_absent_whichever_key_is_read_first(
        self, backend: SecretBackend, secret_value: str, first: str
    ) -> None:
        """Through the broker, an optional key missing beside a present one is "not set" (has()
        False, use() SecretNotFound, [] KeyError) and the present key still reads, in any order."""
        ref = self.provision(backend, "CONTRACT_KEY", secret_value)
        absent = self.absent_beside(backend, ref)
        plans = {
            "mod": {
                "PRESENT": KeyPlan("mod", "PRESENT", ref, required=True),
                "ABSENT": KeyPlan("mod", "ABSENT", absent, required=False),
            }
        }
        broker = CredentialBroker(
            plans=plans, backends=dict.fromkeys(backend.schemes, backend), ttl=300,
            redactor=Redactor(),
        )  # fmt: skip
        view = ModuleCredentials(broker, "mod", frozenset({"ABSENT"}))

        async def present() -> None:
            async with view.use("PRESENT") as plain:
                assert plain.text() == secret_value

        async def absent_twice() -> None:
            for _ in range(2):
                assert await view.has("ABSENT") is False
                with pytest.raises(SecretNotFound):
                    async with view.use("ABSENT"):
                        pass
                with pytest.raises(KeyError):
                    view["ABSENT"]

        async def scenario() -> None:
            for step in [present, absent_twice] if first == "present" else [absent_twice, present]:
                await step()
            await present()

        anyio.run(scenario)

    def test_static_backends_have_no_leases(self, backend: SecretBackend) -> None:
        """A static backend refuses renew and revoke; close may be called twice."""
        if not self.static:
            return
        from scoped_mcp.credentials.lease import LeaseInfo

        lease = LeaseInfo("x/y", ttl=1, renewable=True)
        with pytest.raises(NotImplementedError):
            backend.renew(lease)
        with pytest.raises(NotImplementedError):
            backend.revoke(lease)
        backend.close()
        backend.close()


class LeasedBackendContract(SecretBackendContract):
    """The invariants of ``SecretBackendContract`` plus those of a backend that issues leases."""

    static = False

    def leased_ref(self, backend: SecretBackend) -> SecretRef:
        """A reference whose every fetch issues a new lease."""
        raise NotImplementedError

    @pytest.fixture
    def leased(self, backend: SecretBackend) -> Any:
        """A fresh lease (and its fetch); revoked afterwards if the test left it live."""
        fetched = backend.fetch(self.leased_ref(backend))
        yield fetched
        if fetched.lease is not None:
            with contextlib.suppress(CredentialError):
                backend.revoke(fetched.lease)

    def test_leased_fetch_gives_a_renewable_lease(self, leased: Fetched) -> None:
        """A leased fetch returns its values together with a lease that has an id and a TTL."""
        assert leased.lease is not None
        assert leased.lease.lease_id
        assert leased.lease.ttl > 0
        assert leased.lease.renewable
        assert leased.values

    def test_each_leased_fetch_is_a_new_lease(
        self, backend: SecretBackend, leased: Fetched
    ) -> None:
        """Two fetches of one leased reference issue two distinct leases."""
        again = backend.fetch(self.leased_ref(backend))
        assert again.lease is not None
        assert leased.lease is not None
        try:
            assert again.lease.lease_id != leased.lease.lease_id
        finally:
            backend.revoke(again.lease)

    def test_renew_extends_the_same_lease(self, backend: SecretBackend, leased: Fetched) -> None:
        """renew() keeps the lease id and grants a positive TTL again."""
        assert leased.lease is not None
        renewed = backend.renew(leased.lease)
        assert renewed.lease_id == leased.lease.lease_id
        assert renewed.ttl > 0

    def test_revoke_ends_the_lease(self, backend: SecretBackend, leased: Fetched) -> None:
        """After revoke() the lease can no longer be renewed: renew raises a CredentialError."""
        assert leased.lease is not None
        backend.revoke(leased.lease)
        with pytest.raises(CredentialError):
            backend.renew(leased.lease)

    def test_no_leased_value_in_reprs(self, backend: SecretBackend, leased: Fetched) -> None:
        """No repr of the backend, the fetch, its lease or a renewed lease shows a value."""
        assert leased.lease is not None
        values = [v for v in leased.values.values() if len(v) >= 4]
        texts = [repr(backend), repr(leased), repr(leased.lease)]
        texts.append(repr(backend.renew(leased.lease)))
        assert values
        assert not [t for t in texts for v in values if v in t]
