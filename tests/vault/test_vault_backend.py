"""The Vault backend against a real OpenBao dev server, called directly (no MCP server)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from scoped_mcp.credentials.backends.vault import VaultBackend
from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.credentials.lease import LeaseInfo
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import (
    AccessDenied,
    BackendMisconfigured,
    BackendUnavailable,
    CredentialError,
    SecretNotFound,
)
from tests.vault.conftest import SHORT_TTL_TYPE, Bao, free_port

RESEARCH = SecretRef("vault", "secret/scoped-mcp/research", "api_token")
OPS = SecretRef("vault", "secret/scoped-mcp/ops", "api_token")


class Events:
    """Collects the backend's token events."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, action: str, **fields: Any) -> None:
        self.items.append((action, fields))

    def actions(self) -> list[str]:
        return [action for action, _ in self.items]

    def accessors(self) -> set[str]:
        return {fields["accessor"] for _, fields in self.items}


def approle(bao: Bao, agent_type: str = "research", *, wrap: bool = False, **spec: Any) -> Any:
    """A backend logging in with AppRole (role-id and secret-id from its environ)."""
    environ = {"ROLE": bao.role_id(agent_type), "SECRET": bao.secret_id(agent_type, wrap=wrap)}
    vault_spec = VaultSpec(
        addr=bao.addr, auth="approle", role_id_env="ROLE", secret_id_env="SECRET", **spec
    )
    backend = VaultBackend(vault_spec, environ)
    events = Events()
    backend.attach_events(events)
    return backend, events


def token_backend(bao: Bao, token: str, **spec: Any) -> VaultBackend:
    spec.setdefault("addr", bao.addr)
    return VaultBackend(VaultSpec(auth="token", token_env="TOKEN", **spec), {"TOKEN": token})


def scoped_token(bao: Bao, *policies: str, ttl: str = "1h") -> str:
    answer = bao.admin.auth.token.create(policies=list(policies), ttl=ttl)
    return str(answer["auth"]["client_token"])


def test_kv2_token_auth_reads_every_field_with_either_path_form(bao: Bao) -> None:
    """KV v2 reads return every field as text, no lease, for paths with or without data/."""
    bao.put_kv2("scoped-mcp/research", api_token="kv2-research-token", port="8080")
    backend = token_backend(bao, scoped_token(bao, "scoped-mcp-research"))
    for ref in (RESEARCH, SecretRef("vault", "secret/data/scoped-mcp/research", "api_token")):
        fetched = backend.fetch(ref)
        assert fetched.values == {"api_token": "kv2-research-token", "port": "8080"}
        assert fetched.lease is None
        assert fetched.ttl is None
    backend.close()


def test_kv1_reads_the_secret_at_its_plain_path(bao: Bao) -> None:
    """KV v1 reads the secret at mount/path with no data/ segment."""
    bao.put_kv1("scoped-mcp/research", api_token="kv1-research-token")
    backend = token_backend(bao, scoped_token(bao, "scoped-mcp-research"), kv_version=1)
    ref = SecretRef("vault", "kv1/scoped-mcp/research", "api_token")
    assert backend.fetch(ref).values == {"api_token": "kv1-research-token"}
    assert backend.check(ref).status == "ok"


def test_approle_login_is_lazy_and_uses_the_roles_token(bao: Bao) -> None:
    """AppRole logs in on first use, and the token it uses belongs to the agent type's role."""
    bao.put_kv2("scoped-mcp/research", api_token="approle-value")
    backend, events = approle(bao)
    assert events.items == []
    assert backend.fetch(RESEARCH).values["api_token"] == "approle-value"
    assert events.actions() == ["token_login"]
    (accessor,) = events.accessors()
    info = bao.lookup_accessor(accessor)
    assert info is not None
    assert info["meta"]["role_name"] == "scoped-mcp-research"
    backend.close()


def test_wrapped_secret_id_is_unwrapped_once(bao: Bao) -> None:
    """A response-wrapped secret-id is unwrapped on first login; a second unwrap is refused."""
    bao.put_kv2("scoped-mcp/research", api_token="wrapped-path-value")
    wrapping_token = bao.secret_id("research", wrap=True)
    environ = {"ROLE": bao.role_id("research"), "SECRET": wrapping_token}
    spec = VaultSpec(addr=bao.addr, auth="approle", role_id_env="ROLE", secret_id_env="SECRET")
    backend = VaultBackend(spec, environ)
    assert backend.fetch(RESEARCH).values["api_token"] == "wrapped-path-value"
    # The unwrapped secret-id stays sealed for re-login; the wrapping token is spent.
    reused = VaultBackend(spec, environ)
    with pytest.raises(AccessDenied, match="already unwrapped"):
        reused.fetch(RESEARCH)
    backend.close()


def test_ambient_vault_token_is_never_used(
    bao: Bao, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A root VAULT_TOKEN and ~/.vault-token in the environment do not reach any request."""
    monkeypatch.setenv("VAULT_TOKEN", bao.root_token)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".vault-token").write_text(bao.root_token)
    bao.put_kv2("scoped-mcp/ops", api_token="ops-only")
    backend, events = approle(bao)
    with pytest.raises(AccessDenied, match="secret/data/scoped-mcp/ops"):
        backend.fetch(OPS)
    assert backend.check(OPS).status == "denied"
    root_accessor = bao.admin.auth.token.lookup_self()["data"]["accessor"]
    assert events.accessors()
    assert root_accessor not in events.accessors()
    # Unauthenticated requests (health, wrapping lookup) go out with no token at all.
    assert backend.check(RESEARCH).facts["policies"] == ["default", "scoped-mcp-research"]
    backend.close()


def test_addr_comes_from_spec_then_vault_addr_then_bao_addr(bao: Bao) -> None:
    """addr: the manifest, else $VAULT_ADDR, else $BAO_ADDR, else a broken finding naming it."""
    token = scoped_token(bao, "scoped-mcp-research")
    spec = VaultSpec(auth="token", token_env="TOKEN")
    for environ in ({"VAULT_ADDR": bao.addr}, {"BAO_ADDR": bao.addr}):
        backend = VaultBackend(spec, {"TOKEN": token, **environ})
        assert backend.check(RESEARCH).status == "ok"
    finding = VaultBackend(spec, {"TOKEN": token}).check(RESEARCH)
    assert finding.status == "broken"
    assert "credentials.vault.addr" in finding.detail


def test_token_is_renewed_then_replaced_by_login_past_max_ttl(bao: Bao) -> None:
    """With token_ttl=2s and max_ttl=4s the token is renewed, then re-acquired, and all revoked."""
    bao.put_kv2("scoped-mcp/shortttl", api_token="short-lived-path")
    backend, events = approle(bao, SHORT_TTL_TYPE)
    ref = SecretRef("vault", "secret/scoped-mcp/shortttl", "api_token")
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        backend.maintain()
        assert backend.fetch(ref).values["api_token"] == "short-lived-path"
        time.sleep(0.25)
    actions = events.actions()
    assert "token_renewed" in actions
    relogins = [f for a, f in events.items if a == "token_login" and "replaces" in f]
    assert relogins, actions
    accessors = events.accessors()
    backend.close()
    assert all(bao.lookup_accessor(a) is None for a in accessors)


def test_check_reports_each_status_with_a_one_line_fix(bao: Bao) -> None:
    """check() says ok, missing (field or secret), denied or unreachable, each with a fix; a
    dynamic path it may read but did not issue is unverified."""
    bao.put_kv2("scoped-mcp/research", api_token="check-value")
    backend, events = approle(bao)
    ok = backend.check(RESEARCH)
    assert ok.status == "ok"
    assert ok.facts["sealed"] is False
    assert ok.facts["version"]
    assert ok.facts["capabilities"] == ["read"]
    missing = backend.check(SecretRef("vault", RESEARCH.path, "nope"))
    assert missing.status == "missing"
    assert missing.fix is not None
    assert "bao kv patch -mount=secret scoped-mcp/research nope=" in missing.fix
    shared = backend.check(SecretRef("vault", "secret/scoped-mcp/shared", "absent"))
    assert shared.status == "missing"
    assert "no KV secret" in shared.detail
    denied = backend.check(OPS)
    assert denied.status == "denied"
    assert denied.fix is not None
    assert 'path "secret/data/scoped-mcp/ops" { capabilities = ["read"] }' in denied.fix
    dynamic = backend.check(SecretRef("vault-dynamic", "database/creds/scoped-mcp-research", "u"))
    assert dynamic.status == "unverified", dynamic  # capability only: issuing proves the role
    assert "not issued, so the role is not proved (creds check --deep" in dynamic.detail
    down = token_backend(bao, "unused", addr=f"http://127.0.0.1:{free_port()}").check(RESEARCH)
    assert down.status == "unreachable"
    assert down.detail.startswith("vault unreachable at http://127.0.0.1:")
    for finding in (ok, missing, shared, denied, down):
        assert "check-value" not in repr(finding)
    assert events.actions() == ["token_login"]
    backend.close()


def test_errors_are_ours_and_carry_no_secret(bao: Bao) -> None:
    """Denied, missing and unreachable reads raise our errors, free of tokens and values."""
    token = scoped_token(bao, "scoped-mcp-research")
    backend = token_backend(bao, token)
    with pytest.raises(AccessDenied) as denied:
        backend.fetch(OPS)
    with pytest.raises(SecretNotFound):
        backend.fetch(SecretRef("vault", "secret/scoped-mcp/shared", "x"))
    port = free_port()
    with pytest.raises(BackendUnavailable, match=rf"vault unreachable at http://127.0.0.1:{port}"):
        token_backend(bao, token, addr=f"http://127.0.0.1:{port}", timeout=1).fetch(RESEARCH)
    assert token not in denied.value.message
    assert denied.value.__suppress_context__
    bad = token_backend(bao, "not-a-valid-token")
    with pytest.raises(AccessDenied, match=r"refused the token from \$TOKEN"):
        bad.fetch(RESEARCH)


def test_sealed_vault_is_unavailable_then_recovers(private_bao: Bao) -> None:
    """A sealed server fails reads as 'vault sealed at ...'; after unsealing they work again."""
    private_bao.put_kv2("scoped-mcp/research", api_token="sealed-test")
    backend = token_backend(private_bao, scoped_token(private_bao, "scoped-mcp-research"))
    assert backend.fetch(RESEARCH).values["api_token"] == "sealed-test"
    private_bao.admin.sys.seal()
    with pytest.raises(BackendUnavailable, match=rf"vault sealed at {private_bao.addr}"):
        backend.fetch(RESEARCH)
    finding = backend.check(RESEARCH)
    assert finding.status == "unreachable"
    assert finding.facts["sealed"] is True
    private_bao.unseal()
    assert backend.fetch(RESEARCH).values["api_token"] == "sealed-test"


def test_paused_vault_times_out_as_unreachable_and_recovers(private_bao: Bao) -> None:
    """A server that stops answering has timed out (after the set timeout); reads work again once
    it resumes."""
    private_bao.put_kv2("scoped-mcp/research", api_token="pause-test")
    backend, _ = approle(private_bao, timeout=0.5)
    backend.fetch(RESEARCH)
    private_bao.pause()
    try:
        with pytest.raises(BackendUnavailable, match=r"did not answer within 0\.5s \(timed out\)"):
            backend.fetch(RESEARCH)
    finally:
        private_bao.resume()
    assert backend.fetch(RESEARCH).values["api_token"] == "pause-test"
    backend.close()


def test_expiring_operator_token_is_reported_then_refused_clearly(
    bao: Bao, caplog: pytest.LogCaptureFixture
) -> None:
    """auth: token with a non-renewable token: a warning and event first, then a clear refusal."""
    bao.put_kv2("scoped-mcp/research", api_token="expiring")
    answer = bao.admin.auth.token.create(
        policies=["scoped-mcp-research"], ttl="3s", renewable=False
    )
    backend = token_backend(bao, answer["auth"]["client_token"])
    events = Events()
    backend.attach_events(events)
    assert backend.fetch(RESEARCH).values["api_token"] == "expiring"
    time.sleep(2.1)
    with caplog.at_level("WARNING"):
        backend.maintain()
    assert "cannot be renewed and will expire" in caplog.text
    assert events.actions() == ["token_login", "token_expiring"]
    time.sleep(1.2)
    with pytest.raises(
        AccessDenied, match=r"refused the token from \$TOKEN \(invalid or expired\)"
    ):
        backend.fetch(RESEARCH)


def test_close_revokes_approle_tokens_but_not_an_operator_token(bao: Bao) -> None:
    """close() revokes the AppRole login's token; a token given with auth: token stays valid."""
    backend, events = approle(bao)
    backend.check(RESEARCH)
    (accessor,) = events.accessors()
    backend.close()
    assert bao.lookup_accessor(accessor) is None
    assert events.actions() == ["token_login", "token_revoked"]
    with pytest.raises(BackendUnavailable, match="closed"):
        backend.fetch(RESEARCH)
    operator = scoped_token(bao, "scoped-mcp-research")
    own = token_backend(bao, operator)
    own.check(RESEARCH)
    own.close()
    assert bao.admin.auth.token.lookup(operator)["data"]["ttl"] > 0


def test_a_token_revocation_that_fails_at_close_is_an_event(bao: Bao) -> None:
    """close() that cannot revoke the login's token says so as a credential event (for the audit
    log), naming the accessor, not only on stderr."""
    backend, events = approle(bao)
    backend.check(RESEARCH)
    (accessor,) = events.accessors()
    bao.admin.auth.token.revoke_accessor(accessor)  # revoke-self is now refused
    backend.close()
    assert events.actions() == ["token_login", "failed"]
    failed = events.items[-1][1]
    assert (failed["accessor"], failed["auth"], failed["status"]) == (accessor, "approle", "denied")


def _pki_lease(bao: Bao) -> str:
    """A real, revocable (not renewable) lease: a PKI certificate issued with generate_lease."""
    mounts = bao.admin.sys.list_mounted_secrets_engines()["data"]
    if "pki/" not in mounts:
        bao.admin.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "1h"})
        bao.admin.write("pki/root/generate/internal", common_name="scoped-mcp test", ttl="1h")
        bao.admin.write("pki/roles/leased", allow_any_name=True, generate_lease=True, ttl="10m")
        bao.admin.sys.create_or_update_policy(
            "lease-manager",
            'path "sys/leases/revoke/pki/issue/leased/*" { capabilities = ["update"] }',
        )
    answer = bao.admin.write("pki/issue/leased", common_name="agent.test")
    return str(answer["lease_id"])


def test_dynamic_lease_renew_refusal_and_revoke_with_a_real_lease(bao: Bao) -> None:
    """renew() of a non-renewable lease fails with our error; revoke() ends the lease in Vault."""
    lease_id = _pki_lease(bao)
    backend = token_backend(bao, scoped_token(bao, "lease-manager"))
    lease = LeaseInfo(lease_id, ttl=600, renewable=False)
    with pytest.raises(CredentialError):
        backend.renew(lease)
    assert bao.admin.sys.read_lease(lease_id)["data"]["id"] == lease_id
    backend.revoke(lease)
    with pytest.raises(Exception, match="invalid lease"):
        bao.admin.sys.read_lease(lease_id)
    with pytest.raises(AccessDenied, match="sys/leases/revoke/"):
        backend.revoke(LeaseInfo(_pki_lease(bao).replace("leased", "other"), 60, False))


def test_dynamic_read_without_a_lease_id_is_a_static_value_with_its_ttl(bao: Bao) -> None:
    """A vault-dynamic read whose answer has a duration but no lease id gets that TTL, no lease."""
    bao.put_kv1("scoped-mcp/research", api_token="kv1-with-ttl", ttl="30s")
    backend = token_backend(bao, scoped_token(bao, "scoped-mcp-research"))
    fetched = backend.fetch(SecretRef("vault-dynamic", "kv1/scoped-mcp/research", "api_token"))
    assert fetched.lease is None
    assert fetched.ttl == 30
    assert fetched.values["api_token"] == "kv1-with-ttl"


def test_reprs_show_no_token_or_secret_id(bao: Bao) -> None:
    """No repr of the backend, its keeper, token or findings shows the token or secret-id."""
    environ = {"ROLE": bao.role_id("research"), "SECRET": bao.secret_id("research")}
    spec = VaultSpec(addr=bao.addr, auth="approle", role_id_env="ROLE", secret_id_env="SECRET")
    backend = VaultBackend(spec, environ)
    finding = backend.check(RESEARCH)
    keeper = backend._auth
    assert keeper is not None
    shown = " ".join(
        [repr(backend), repr(keeper), repr(keeper._token), repr(finding), repr(vars(backend))]
    )
    assert environ["SECRET"] not in shown
    assert environ["ROLE"] not in shown
    token_attrs = [v for v in vars(keeper).values() if isinstance(v, str)]
    assert all(environ["SECRET"] not in v for v in token_attrs)
    backend.close()


def test_token_file_and_unset_env_inputs(bao: Bao, tmp_path: Path) -> None:
    """auth: token reads token_file; an unset *_env variable is a broken finding naming it."""
    token_file = tmp_path / "vault-token"
    token_file.write_text(scoped_token(bao, "scoped-mcp-research") + "\n")
    token_file.chmod(0o600)
    spec = VaultSpec(addr=bao.addr, auth="token", token_file=token_file)
    assert VaultBackend(spec, {}).check(RESEARCH).status == "ok"
    unset = VaultSpec(addr=bao.addr, auth="approle", role_id_env="R", secret_id_env="S")
    finding = VaultBackend(unset, {"R": "x"}).check(RESEARCH)
    assert finding.status == "broken"
    assert "S, which is not set" in finding.detail
    no_source = VaultBackend(VaultSpec(addr=bao.addr, auth="token"), {}).check(RESEARCH)
    assert no_source.status == "broken"
    assert "token_env or token_file" in no_source.detail


def test_concurrent_first_use_logs_in_once(bao: Bao) -> None:
    """Sixteen threads fetching at once share one AppRole login (the token state is locked)."""
    bao.put_kv2("scoped-mcp/research", api_token="concurrent")
    backend, events = approle(bao)
    results: list[str] = []

    def worker() -> None:
        results.append(backend.fetch(RESEARCH).values["api_token"] or "")

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["concurrent"] * 16
    assert events.actions() == ["token_login"]
    backend.close()


def test_missing_hvac_is_a_broken_finding_with_the_install_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without hvac the backend reports itself broken and names the extra to install."""
    monkeypatch.setitem(sys.modules, "hvac", None)
    backend = VaultBackend(VaultSpec(addr="http://127.0.0.1:1", auth="token", token_env="T"), {})
    finding = backend.check(RESEARCH)
    assert finding.status == "broken"
    assert finding.fix == "pip install 'scoped-mcp[vault]'"
    with pytest.raises(BackendMisconfigured):
        backend.fetch(RESEARCH)


def test_token_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A token_file other users can read is refused with the chmod, before any request is made."""
    from scoped_mcp.credentials.backends.vault.login import read_file as _read_file
    from scoped_mcp.errors import InsecureSource

    token_file = tmp_path / "vault-token"
    token_file.write_text("hvs.not-a-real-token\n")
    token_file.chmod(0o644)
    with pytest.raises(InsecureSource) as info:
        _read_file(token_file, "token")
    assert f"chmod 600 {token_file}" in info.value.diagnostics()
    assert "not-a-real-token" not in info.value.diagnostics()
    role_file = tmp_path / "role-id"
    role_file.write_text("role-1234\n")
    role_file.chmod(0o644)
    assert _read_file(role_file, "role_id") == "role-1234"
