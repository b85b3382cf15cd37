"""secrets_backends/file: provision.py writes a 0600 secrets file the bundled manifest then uses."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import yaml

from tests.secrets_backends.scripts import BACKENDS, run_script
from tests.services.fake_http import serve_http
from tests.services.ntfy import NtfyService
from tests.support import ServerHandle, base_env, run_cli

PROVISION = BACKENDS / "file" / "provision.py"
MANIFEST = BACKENDS / "file" / "notifier.yml"
SECRETS = Path(".config") / "scoped-mcp" / "secrets" / "notifier.yml"


@pytest.mark.anyio
async def test_provision_then_check_then_agent_sends_with_the_file_token(
    tmp_path: Path, serve: Callable[..., AbstractAsyncContextManager[ServerHandle]]
) -> None:
    """provision.py writes both keys 0600 in a 0700 dir; creds check says ok; a send uses them."""
    home = tmp_path / "home"
    token = "tk_" + secrets.token_hex(12)
    ntfy = NtfyService(token=token)
    with serve_http(ntfy) as fake_ntfy:
        done = run_script(
            PROVISION,
            f"~/{SECRETS}",
            "NTFY_URL",
            "NTFY_TOKEN",
            home=home,
            stdin=f"{fake_ntfy.url}\n{token}\n",
        )
        assert done.returncode == 0, done.stderr
        path = home / SECRETS
        assert done.stdout.splitlines() == [
            f"{path}: NTFY_URL set",
            f"{path}: NTFY_TOKEN set",
            f"{path}: 2 keys, mode 0600",
        ]
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
        assert yaml.safe_load(path.read_text()) == {"NTFY_URL": fake_ntfy.url, "NTFY_TOKEN": token}

        check = run_cli(
            "creds",
            "check",
            "--manifest",
            str(MANIFEST),
            "--agent-id",
            "notifier-01",
            env=base_env(home),
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert re.search(r"NTFY_URL\s.*\sok\b", check.stdout)
        assert re.search(r"NTFY_TOKEN\s.*\sok\b", check.stdout)

        async with serve(MANIFEST, agent_id="notifier-01") as agent:
            result = await agent.call("ntfy_send", {"message": "deployed"})
    assert result["sent"] is True
    assert ntfy.messages[0]["topic"] == "file-notifier-01"
    shown = done.stdout + done.stderr + check.stdout + check.stderr + json.dumps(result)
    assert token not in shown
    assert fake_ntfy.url not in done.stdout + check.stdout


def test_a_second_run_keeps_other_keys_and_rewrites_only_a_change(tmp_path: Path) -> None:
    """A re-run leaves an unchanged file untouched, keeps unnamed keys, updates a changed one."""
    home = tmp_path / "home"
    first = run_script(PROVISION, f"~/{SECRETS}", "A", "B", home=home, stdin="a-1234\nb-1234\n")
    assert first.returncode == 0, first.stderr
    path = home / SECRETS
    before = path.stat().st_mtime_ns, path.stat().st_ino
    again = run_script(PROVISION, f"~/{SECRETS}", "A", home=home, stdin="a-1234\n")
    assert again.stdout.splitlines()[0] == f"{path}: A unchanged"
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    changed = run_script(PROVISION, f"~/{SECRETS}", "B", home=home, stdin="b-5678\n")
    assert changed.stdout.splitlines()[0] == f"{path}: B set"
    assert yaml.safe_load(path.read_text()) == {"A": "a-1234", "B": "b-5678"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["notifier.yml"]


def test_a_file_others_can_read_is_put_back_to_0600(tmp_path: Path) -> None:
    """A group-readable secrets file is rewritten 0600 even when no value changes."""
    home = tmp_path / "home"
    path = home / SECRETS
    path.parent.mkdir(parents=True)
    path.write_text("A: a-1234\n")
    path.chmod(0o644)
    done = run_script(PROVISION, str(path), "A", home=home, stdin="a-1234\n")
    assert done.returncode == 0, done.stderr
    assert path.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(path.read_text()) == {"A": "a-1234"}


def test_a_symbolic_link_or_a_broken_file_is_refused_without_quoting_it(tmp_path: Path) -> None:
    """A link is not followed, a file that is not YAML is named by line only: exit 2, no write."""
    home = tmp_path / "home"
    target = tmp_path / "elsewhere.yml"
    target.write_text("A: a-1234\n")
    link = tmp_path / "link.yml"
    link.symlink_to(target)
    linked = run_script(PROVISION, str(link), "A", home=home, stdin="new-value\n")
    assert linked.returncode == 2
    assert "not a regular file" in linked.stderr
    assert target.read_text() == "A: a-1234\n"

    broken = tmp_path / "broken.yml"
    broken.write_text("A: a-1234\nB: [unclosed-secret-value\n")
    broken.chmod(0o600)
    done = run_script(PROVISION, str(broken), "C", home=home, stdin="c-1234\n")
    assert done.returncode == 2
    assert "is not valid YAML" in done.stderr
    assert "unclosed-secret-value" not in done.stderr
    assert "Traceback" not in done.stderr
    assert broken.read_text() == "A: a-1234\nB: [unclosed-secret-value\n"
