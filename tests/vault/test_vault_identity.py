"""``vault-identity:ROLE`` against real OpenBao: each agent instance gets a signed identity
token naming itself, verified against OpenBao's JWKS, even with two agents of one type (one
AppRole role, one shared alias) minting at once."""

from __future__ import annotations

import subprocess
import threading
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
from tests.vault.conftest import Bao

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
