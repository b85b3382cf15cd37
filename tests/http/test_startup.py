"""Start-up over HTTP: refusals before anything listens, token rotation, the bundled manifests."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.http.support import TOKEN, serving
from tests.stdio.test_secret_leaks import leaks
from tests.support import base_env, run_cli

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
# Values that let every bundled module start; nothing listens there and no test calls a tool
# that would use them.
DUMMY_CREDENTIALS = {
    "INFLUXDB_URL": "http://127.0.0.1:9",
    "INFLUXDB_TOKEN": "dummy-influx-token",
    "GRAFANA_URL": "http://127.0.0.1:9",
    "GRAFANA_SERVICE_ACCOUNT_TOKEN": "dummy-grafana-token",
    "NTFY_URL": "http://127.0.0.1:9",
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": "9",
    "SMTP_USER": "dummy",
    "SMTP_PASSWORD": "dummy-smtp-password",
    "MATRIX_HOMESERVER": "http://127.0.0.1:9",
    "MATRIX_ACCESS_TOKEN": "dummy-matrix-token",
    "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/slack",
    "DISCORD_WEBHOOK_URL": "http://127.0.0.1:9/discord",
}


def _manifest(write_manifest: Callable[..., Path], tmp_path: Path, **http: object) -> Path:
    return write_manifest(
        {
            "agent_type": "build",
            "modules": {"filesystem": {"mode": "read", "config": {"base_path": str(tmp_path)}}},
            "serve": {"http": http},
        }
    )


def _serve(manifest: Path, home: Path, *args: str, token: str = TOKEN) -> tuple[int, str]:
    env = base_env(home, AGENT_ID="a1", AGENT_TYPE="build", SCOPED_MCP_HTTP_TOKEN=token)
    done = run_cli("serve", "--manifest", str(manifest), *args, env=env)
    return done.returncode, done.stderr


@pytest.mark.parametrize("address", ["0.0.0.0:8765", "192.0.2.7:8765", "[2001:db8::1]:8765"])
def test_remote_bind_is_refused_without_allow_remote_and_tls(
    tmp_path: Path, write_manifest: Callable[..., Path], address: str
) -> None:
    """A non-loopback address is refused at start-up (exit 2, the fix named): without
    --allow-remote, and with it but without TLS."""
    manifest = _manifest(write_manifest, tmp_path, token="env:SCOPED_MCP_HTTP_TOKEN")
    code, stderr = _serve(manifest, tmp_path / "h", "--http", address)
    assert code == 2
    assert "not a loopback address" in stderr
    assert "--allow-remote" in stderr
    code, stderr = _serve(manifest, tmp_path / "h", "--http", address, "--allow-remote")
    assert code == 2
    assert "needs TLS" in stderr
    assert "--tls-cert" in stderr


@pytest.mark.parametrize(
    ("http", "token", "expected"),
    [
        ({}, TOKEN, "serve.http.token: serving over HTTP needs a bearer token"),
        ({"token": "env:SCOPED_MCP_HTTP_TOKEN"}, "short", "at least 16"),
        ({"token": "env:NOT_SET_ANYWHERE"}, TOKEN, "HTTP_TOKEN (module serve.http"),
        ({"token": "no-reference"}, TOKEN, "serve.http.token"),
        ({"max_sessions": 0, "token": "env:X"}, TOKEN, "serve.http.max_sessions"),
        ({"auth": "jwt", "token": "env:X"}, TOKEN, "auth: jwt needs a jwt: block and no token:"),
        (
            {"token": "env:X", "jwt": {"issuer": "https://i.example", "audience": "https://a/"}},
            TOKEN,
            "a jwt: block needs auth: jwt",
        ),
    ],
)
def test_a_bad_http_setting_stops_start_up_naming_the_field(
    tmp_path: Path,
    write_manifest: Callable[..., Path],
    http: dict[str, object],
    token: str,
    expected: str,
) -> None:
    """No token reference, a short or missing token, or an invalid serve.http field: exit 2
    with a message naming it, and the token value never printed."""
    manifest = _manifest(write_manifest, tmp_path, **http)
    code, stderr = _serve(manifest, tmp_path / "h", "--http", "127.0.0.1:9", token=token)
    assert code == 2
    assert expected in stderr
    assert TOKEN not in stderr


def test_http_options_without_http_are_a_usage_error(tmp_path: Path) -> None:
    """--allow-remote or TLS files without --http: argparse refuses (exit 2)."""
    done = run_cli("serve", "--manifest", "m.yml", "--allow-remote", env=base_env(tmp_path))
    assert done.returncode == 2
    assert "go with --http" in done.stderr


def test_rotated_token_old_one_valid_only_for_the_overlap(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """A token rotated in its file is picked up on the credential TTL; the old one is accepted
    for token_overlap_seconds more, then refused."""
    secrets = tmp_path / "secrets.yml"
    new = "rotated-token-abcdefghijklmnop"
    _write_secret(secrets, TOKEN)
    manifest = write_manifest(
        {
            "agent_type": "build",
            "modules": {"filesystem": {"mode": "read", "config": {"base_path": str(tmp_path)}}},
            "credentials": {"ttl": 1},
            "serve": {"http": {"token": f"file:{secrets}#TOKEN", "token_overlap_seconds": 3}},
        }
    )
    with serving(manifest, tmp_path / "home", agent_type="build") as server, server.http() as http:

        def status(token: str) -> int:
            return http.post(
                "/mcp", json={}, headers={"Authorization": f"Bearer {token}"}
            ).status_code

        assert status(TOKEN) != 401
        assert status(new) == 401
        _write_secret(secrets, new)
        time.sleep(1.5)  # past the credential TTL: the next request re-reads the file
        assert status(new) != 401
        assert status(TOKEN) != 401  # inside the overlap
        time.sleep(3.5)
        assert status(TOKEN) == 401
        assert status(new) != 401
    assert new not in server.audit_path.read_text() + server.stderr()


def _write_secret(path: Path, token: str) -> None:
    path.write_text(f"TOKEN: {token}\n")
    os.chmod(path, 0o600)


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(p.name for p in MANIFESTS.glob("*.yml")))
async def test_bundled_manifest_serves_over_http(tmp_path: Path, name: str) -> None:
    """Each bundled manifest, unchanged, starts with --http and lists its tools to an MCP client."""
    copy = tmp_path / "checkout" / "manifests" / name
    copy.parent.mkdir(parents=True)
    shutil.copyfile(MANIFESTS / name, copy)
    agent_type = next(
        line.split(":", 1)[1].strip()
        for line in copy.read_text().splitlines()
        if line.startswith("agent_type:")
    )
    with serving(copy, tmp_path / "home", agent_type=agent_type, env=DUMMY_CREDENTIALS) as server:
        async with server.client() as client:
            tools = await client.list_tools()
        assert server.stop() == 0
    listed = run_cli("tools", "--manifest", str(copy), "--json", env=base_env(tmp_path / "t"))
    assert len(tools) == len(json.loads(listed.stdout)["tools"])
    assert tools


def test_stdio_start_up_does_not_load_our_http_stack() -> None:
    """Importing what a stdio start imports loads none of the HTTP serving code."""
    code = (
        "import sys, scoped_mcp.server, scoped_mcp.commands.serve, scoped_mcp.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('scoped_mcp.http')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("token", "warned"),
    [(TOKEN, True), (secrets.token_urlsafe(32), False)],
    ids=["weak", "strong"],
)
def test_a_weak_token_is_served_with_a_warning(
    tmp_path: Path, write_manifest: Callable[..., Path], token: str, warned: bool
) -> None:
    """A token long enough to serve but weak-looking starts with one ops-log warning (never the
    value); a strong one starts without it."""
    manifest = _manifest(write_manifest, tmp_path, token="env:AGENT_HTTP_TOKEN")
    env = {"AGENT_HTTP_TOKEN": token}
    with serving(manifest, tmp_path / "home", agent_type="build", env=env) as server:
        assert server.stop() == 0
    stderr = server.stderr()
    assert ("the HTTP bearer token looks weak" in stderr) is warned
    assert leaks(token, "ops log", stderr) == []
