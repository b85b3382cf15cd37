"""Credentials as files, through the real server over stdio: current after a rotation, never in
the environment; ``sandbox: off`` is warned about; a missing bwrap refuses start-up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.modules.mcp_proxy_sandbox.support import (
    answer,
    digest,
    escape_manifest,
    require_bwrap,
    write_secrets,
)
from tests.services.checks import assert_clean

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]
BEFORE = "file-token-before-" + "5e6f7a8b9c"
AFTER = "file-token-after-" + "1d2e3f4a5b"


async def test_credential_file_follows_a_rotation_and_stays_out_of_the_environment(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    """The child reads its token from a 0400 file; after the secrets file changes (TTL 1 s) the
    next call runs on a new child whose file holds the new value; neither the environment nor
    /proc/self/environ holds either value, nor do the ops log and the audit log."""
    require_bwrap()
    manifest = escape_manifest(tmp_path, ttl=1, token=BEFORE)
    async with serve(manifest) as server:
        first = await answer(server, "credential", env_name="TOKEN_FILE")
        write_secrets(tmp_path / "secrets.yml", AFTER)
        await anyio.sleep(1.5)  # past the TTL: the next call re-reads and sees a new value
        second = await answer(server, "credential", env_name="TOKEN_FILE")
        stderr = server.stderr()
        audit = server.audit_path.read_text()
    assert first["path"] == "/run/scoped-mcp/files/token"
    assert first["mode"] == "0o400"
    assert first["sha256"] == digest(BEFORE)
    assert second["sha256"] == digest(AFTER)
    for seen in (first, second):
        assert digest(BEFORE) not in seen["env_digests"] + seen["proc_digests"]
        assert digest(AFTER) not in seen["env_digests"] + seen["proc_digests"]
    assert "credentials changed" in stderr
    assert_clean(stderr + audit + repr(first) + repr(second), [BEFORE, AFTER])


async def test_sandbox_off_is_warned_and_still_delivers_files(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    """``sandbox: off`` logs a warning at start-up; the file comes as a sealed memfd the child
    opens at /proc/self/fd/N, and the environment still holds only the path."""
    manifest = escape_manifest(tmp_path, sandbox="off", token=BEFORE)
    async with serve(manifest) as server:
        seen = await answer(server, "credential", env_name="TOKEN_FILE")
        stderr = server.stderr()
    assert "sandbox: off: the upstream runs unconfined" in stderr
    assert seen["path"].startswith("/proc/self/fd/")
    assert seen["sha256"] == digest(BEFORE)
    assert digest(BEFORE) not in seen["env_digests"] + seen["proc_digests"]
    assert_clean(stderr + server.audit_path.read_text(), [BEFORE])


@pytest.mark.parametrize("how", ["configured path", "not on PATH"])
async def test_missing_bwrap_refuses_start_up_with_the_fix(
    tmp_path: Path, serve: Callable[..., Any], how: str
) -> None:
    """Without bubblewrap the server does not start unsandboxed: it stops, saying to install
    bubblewrap or to opt out with sandbox: off."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    if how == "configured path":
        manifest = escape_manifest(tmp_path, sandbox={"bwrap": str(tmp_path / "no" / "bwrap")})
        env: dict[str, str] = {}
    else:
        manifest = escape_manifest(tmp_path)
        env = {"PATH": str(empty)}
    with pytest.raises(Exception):  # noqa: B017, PT011 - the client sees the server exit
        async with serve(manifest, env=env) as server:
            await server.tool_names()
    stderr = (tmp_path / "home" / "stderr-agent-01.log").read_text()
    assert "sandboxed by default but bubblewrap" in stderr
    assert "apt-get install bubblewrap" in stderr
    assert "sandbox: off" in stderr
