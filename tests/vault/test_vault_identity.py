"""``vault-identity:ROLE`` against real OpenBao: each agent instance gets a signed identity
token naming itself, verified against OpenBao's JWKS, even with two agents of one type (one
AppRole role, one shared alias) minting at once."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from scoped_mcp.credentials.backends.interface import BackendContext
from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.credentials.backends.vault.identity import VaultIdentityBackend
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import ManifestError
from scoped_mcp.identity import AgentContext
from tests.support import base_env, run_cli
from tests.vault.conftest import Bao
from tests.vault.test_mcp_proxy_vault import parsed
from tests.vault.test_vault_stdio import approle_env, vault_manifest

IDENTITY = Path(__file__).resolve().parents[2] / "secrets_backends" / "vault" / "identity.sh"
ROLE = "scoped-mcp-research"


@pytest.fixture(scope="module")
def identity_roles(bao: Bao) -> str:
    """Run the documented identity set-up; return the role's client id (the JWT audience)."""
    env = {**bao.env(), "BAO_ADDR": bao.addr, "BAO_TOKEN": bao.root_token}
    done = subprocess.run(
        ["bash", str(IDENTITY), "research"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().rsplit("client_id=", 1)[1]


def backend(bao: Bao, agent_id: str) -> VaultIdentityBackend:
    spec = VaultSpec.model_validate(
        {"addr": bao.addr, "auth": "approle", "role_id_env": "RID", "secret_id_env": "SID"}
    )
    environ = {"RID": bao.role_id("research"), "SID": bao.secret_id("research")}
    context = BackendContext(AgentContext(agent_id, "research"), environ, settings={"vault": spec})
    made = VaultIdentityBackend.from_manifest(None, context)
    assert isinstance(made, VaultIdentityBackend)
    return made


def verified(bao: Bao, token: str, audience: str) -> dict[str, Any]:
    """The JWT's claims after checking its signature against OpenBao's published keys."""
    keys = httpx.get(f"{bao.addr}/v1/identity/oidc/.well-known/keys", timeout=10).json()
    header = jwt.get_unverified_header(token)
    key = next(k for k in jwt.PyJWKSet.from_dict(keys).keys if k.key_id == header["kid"])
    claims: dict[str, Any] = jwt.decode(
        token,
        key=key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=f"{bao.addr}/v1/identity/oidc",
    )
    return claims


def test_two_agents_of_one_type_each_get_their_own_id(bao: Bao, identity_roles: str) -> None:
    """Two agents of one type minting at once each get a token whose agent_id is their own,
    signed by OpenBao's key, short-lived, and with distinct subjects (entities)."""
    agents = {name: backend(bao, name) for name in ("research-7", "research-8")}
    tokens: dict[str, list[str]] = {name: [] for name in agents}

    def mint(name: str) -> None:
        for _ in range(4):
            fetched = agents[name].fetch(SecretRef("vault-identity", ROLE, None))
            assert fetched.ttl is not None
            assert 0 < fetched.ttl <= 300
            tokens[name].append(fetched.values[None])

    threads = [threading.Thread(target=mint, args=(name,)) for name in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    subjects = {}
    for name, minted in tokens.items():
        assert len(minted) == 4
        for token in minted:
            claims = verified(bao, token, identity_roles)
            assert claims["agent_id"] == name
            assert claims["agent_type"] == "research"
            assert claims["exp"] - claims["iat"] <= 300
            subjects.setdefault(name, set()).add(claims["sub"])
    assert len(subjects["research-7"]) == len(subjects["research-8"]) == 1
    assert subjects["research-7"] != subjects["research-8"]
    for made in agents.values():
        made.close()


def test_a_forged_token_fails_verification(bao: Bao, identity_roles: str) -> None:
    """A token whose claims were altered no longer verifies against the JWKS."""
    token = backend(bao, "research-9").fetch(SecretRef("vault-identity", ROLE, None)).values[None]
    head, body, signature = token.split(".")
    forged_body = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(body).replace(b"research-9", b"research-1")
    ).decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verified(bao, f"{head}.{forged_body}.{signature}", identity_roles)


def test_references_name_a_role_only() -> None:
    """vault-identity:ROLE takes no field and no path."""
    for text in ("a#b", "a/b"):
        path, _, field = text.partition("#")
        with pytest.raises(ManifestError):
            VaultIdentityBackend.parse_ref("vault-identity", path, field, text=text, where="k")


@pytest.mark.anyio
@pytest.mark.stdio
async def test_two_agents_over_stdio_get_their_own_claims(
    bao: Bao,
    identity_roles: str,
    write_manifest: Callable[..., Path],
    serve: Callable[..., Any],
) -> None:
    """Two servers of one agent type, one AppRole role, running at once: each module's
    identity token names its own agent; a module echoing the token shows it scrubbed; creds
    check proves the key without printing it."""
    manifest_data = vault_manifest(bao, keys={"ID_TOKEN": "vault-identity:scoped-mcp-{agent_type}"})
    manifest_data["modules"] = {
        "ident": {"type": "credential_modules.identity_claims:IdentityClaimsModule"}
    }
    manifest = write_manifest(manifest_data)
    async with (
        serve(manifest, agent_id="research-21", env=approle_env(bao)) as one,
        serve(manifest, agent_id="research-22", env=approle_env(bao)) as two,
    ):
        seen = {}
        for name, server in (("research-21", one), ("research-22", two)):
            result = await parsed(server, "ident_claims", {})
            assert result["claims"]["agent_id"] == name
            assert result["claims"]["agent_type"] == "research"
            assert result["claims"]["aud"] == identity_roles
            seen[name] = result["claims"]["sub"]
            echoed = await server.client.call_tool("ident_echo", {})
            text = echoed.content[0].text  # type: ignore[union-attr]
            assert text == "token=[REDACTED]"
            assert "eyJ" not in server.audit_path.read_text()  # no JWT (base64url JSON) logged
    assert seen["research-21"] != seen["research-22"]
    env = {**approle_env(bao), "VAULT_SECRET_ID": bao.secret_id("research")}
    done = run_cli(
        "creds",
        "check",
        "--manifest",
        str(manifest),
        "--agent-id",
        "research-23",
        env=base_env(manifest.parent / "home", **env),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "minted an identity token for research-23" in done.stdout
    assert "eyJ" not in done.stdout + done.stderr
    assert "eyJ" not in one.stderr() + two.stderr()
