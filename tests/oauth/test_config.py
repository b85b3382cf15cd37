"""The oauth: block of mcp_proxy: refused shapes name the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from scoped_mcp.errors import ManifestError
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules.mcp_proxy import McpProxyConfig, McpProxyModule
from scoped_mcp.oauth.store import open_store

OAUTH = {"store": "file:/tmp/grant.json", "scopes": ["read"]}


def config(**extra: Any) -> dict[str, Any]:
    return {"url": "https://mcp.example.org/mcp", "tools": {"a": "read"}, "oauth": OAUTH} | extra


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (config(url=None, command="x"), "'oauth' applies to a 'url' upstream only"),
        (config(headers={"Authorization": "Bearer x"}), "the Authorization header is the broker's"),
        (config(oauth={**OAUTH, "client_secret": "plain-secret"}), "${cred:KEY}"),
        (config(oauth={**OAUTH, "scopes": ["a b"]}), "is not an OAuth scope token"),
        (config(oauth={**OAUTH, "client_metadata": {"redirect_uris": []}}), "not allowed"),
        (config(oauth={"scopes": ["read"]}), "store"),
        (config(oauth={**OAUTH, "extra": 1}), "extra"),
    ],
)
def test_refused_configurations(data: dict[str, Any], message: str) -> None:
    """Each bad oauth: block is refused with a message naming what to change."""
    with pytest.raises(ValidationError) as caught:
        McpProxyConfig.model_validate(data, context={"module_key": "gh"})
    assert message in str(caught.value)


def test_client_keys_are_required_credentials_and_the_fix_names_the_module() -> None:
    """A pre-registered client's ${cred:KEY}s are the module's keys; the login fix is exact."""
    data = config(oauth={**OAUTH, "client_id": "${cred:GH_ID}", "client_secret": "${cred:GH_SEC}"})
    parsed = McpProxyConfig.model_validate(
        data, context={"module_key": "gh", "manifest": Path("/etc/m.yml")}
    )
    assert McpProxyModule.declared_credentials(parsed) == (("GH_ID", "GH_SEC"), ())
    assert parsed.oauth.login_command() == "scoped-mcp auth login --manifest /etc/m.yml --module gh"


@pytest.mark.parametrize("reference", ["vaulty:x", "file:relative/grant.json", "nothing", "file:"])
def test_bad_store_references_are_refused(reference: str) -> None:
    """A store that is not file:/absolute/path stops with the accepted form."""
    with pytest.raises(ManifestError) as caught:
        open_store(reference, AgentContext("a1", "research"), where="modules.gh.config.oauth.store")
    assert "modules.gh.config.oauth.store" in str(caught.value)


def test_a_manifest_without_oauth_imports_nothing_of_oauth(tmp_path: Path) -> None:
    """Planning an mcp_proxy manifest without an oauth: block, and building the command line,
    import no module of scoped_mcp.oauth (FastMCP imports the SDK's client on its own)."""
    import subprocess
    import sys

    manifest = tmp_path / "m.yml"
    manifest.write_text(
        "agent_type: research\nmodules:\n  up:\n"
        "    type: scoped_mcp.modules.mcp_proxy:McpProxyModule\n"
        "    config: {url: 'https://mcp.example.org/mcp', tools: {a: read}}\n"
    )
    probe = (
        "import sys\n"
        "from scoped_mcp import cli, registry\n"
        "from scoped_mcp.manifest import load\n"
        "cli.command_parser()\n"
        f"registry.plan(load({str(manifest)!r}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('scoped_mcp.oauth')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_auth_commands_refuse_a_module_without_oauth(tmp_path: Path) -> None:
    """auth login for an unknown module, or one without an oauth block, exits 2 naming it."""
    from tests.support import base_env, run_cli

    manifest = tmp_path / "m.yml"
    manifest.write_text(
        "agent_type: research\nmodules:\n  up:\n"
        "    type: scoped_mcp.modules.mcp_proxy:McpProxyModule\n"
        "    config: {url: 'https://mcp.example.org/mcp', tools: {a: read}}\n"
    )
    env = base_env(tmp_path / "home")
    for module, message in (("nope", "has no module 'nope'"), ("up", "has no oauth block")):
        done = run_cli("auth", "login", "--manifest", str(manifest), "--module", module, env=env)
        assert done.returncode == 2
        assert message in done.stderr
    status = run_cli("auth", "status", "--manifest", str(manifest), env=env)
    assert status.returncode == 0
    assert "no module of this manifest has an oauth block" in status.stdout


def test_only_https_or_loopback_endpoints_get_tokens() -> None:
    """A discovered endpoint on plain http to a remote host is refused."""
    from scoped_mcp.oauth.config import safe_endpoint

    assert safe_endpoint("https://auth.example.org/token")
    assert safe_endpoint("http://127.0.0.1:8080/token")
    assert not safe_endpoint("http://auth.example.org/token")
    assert not safe_endpoint("https://user:pw@auth.example.org/token")
    assert not safe_endpoint("ftp://auth.example.org/token")


def test_manifest_validate_names_a_bad_store_and_a_vault_store_without_vault(
    tmp_path: Path,
) -> None:
    """`manifest validate` (no network, no store touched) refuses a relative file store and a
    vault: store in a manifest without credentials.vault, naming the field."""
    from tests.support import base_env, run_cli

    for store, message in (
        ("file:relative.json", "a file: store needs an absolute path"),
        ("vault:secret/scoped-mcp/oauth/x", "a vault: store needs credentials.vault"),
        ("s3:bucket/x", "store must be file:"),
    ):
        manifest = tmp_path / "m.yml"
        manifest.write_text(
            "agent_type: research\nmodules:\n  up:\n"
            "    type: scoped_mcp.modules.mcp_proxy:McpProxyModule\n"
            "    config:\n      url: 'https://mcp.example.org/mcp'\n      tools: {a: read}\n"
            f"      oauth: {{store: '{store}'}}\n"
        )
        done = run_cli("manifest", "validate", str(manifest), env=base_env(tmp_path / "home"))
        assert done.returncode == 2, done.stdout + done.stderr
        assert message in done.stdout + done.stderr
        assert "oauth" in done.stdout + done.stderr


def test_a_pre_registered_clients_repr_holds_no_secret() -> None:
    """The login's client (id and secret from the broker) shows its id, never its secret."""
    from scoped_mcp.oauth.login import Client

    secret = "client-secret-3f9a1c7e5b2d"
    assert secret not in repr(Client("scoped-mcp-test", secret))
    assert "scoped-mcp-test" in repr(Client("scoped-mcp-test", secret))
