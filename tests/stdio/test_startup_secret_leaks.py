"""A refused start-up keeps credentials out of stderr: a module's startup() error is scrubbed."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.contract_support import child_env
from tests.support import run_cli

FAILING_STARTUP = """
from scoped_mcp.errors import BackendError
from scoped_mcp.modules._base import ToolModule, tool


class FailingStartup(ToolModule):
    name = "failing"
    required_credentials = ("DB_URL",)

    async def startup(self) -> None:
        async with self.credentials.use("DB_URL") as url:
            raise {error}(f"could not connect to {{url.text()}}")

    @tool(mode="read")
    async def ping(self) -> str:
        \"\"\"Answer.\"\"\"
        return "pong"
"""


@pytest.mark.parametrize("error", ["RuntimeError", "BackendError"])
def test_a_module_startup_error_quoting_its_credential_does_not_reach_stderr(
    tmp_path: Path, error: str
) -> None:
    """A module whose startup() fails with its credential in the message is a refused start-up
    (exit 2): stderr explains it without the value (scrubbed, or only the foreign error's type)
    and has no traceback."""
    modules = tmp_path / "mods"
    modules.mkdir()
    (modules / "failing_startup.py").write_text(FAILING_STARTUP.format(error=error))
    manifest = tmp_path / "manifest.yml"
    manifest.write_text(
        "agent_type: research\nmodules:\n  failing:\n    type: failing_startup:FailingStartup\n"
    )
    password = secrets.token_urlsafe(18)
    secret = f"postgres://app:{password}@127.0.0.1:1/app"
    env = child_env(
        tmp_path / "home", modules, AGENT_ID="fail-01", AGENT_TYPE="research", DB_URL=secret
    )
    result = run_cli("--manifest", str(manifest), env=env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert password not in result.stderr
    assert result.stderr.startswith("scoped-mcp: "), result.stderr
    if error == "RuntimeError":  # a foreign error: the module and the type, never its text
        assert "modules.failing: startup failed (RuntimeError)" in result.stderr
    assert "Traceback" not in result.stderr


PRINTING_STARTUP = """
import os
import sys

from scoped_mcp.errors import BackendError
from scoped_mcp.modules._base import ToolModule, tool


class PrintingStartup(ToolModule):
    name = "printing"
    required_credentials = ("API_TOKEN",)

    async def startup(self) -> None:
        async with self.credentials.use("API_TOKEN") as token:
            print("print to stdout", token.text())
            print("print to stderr", token.text(), file=sys.stderr, flush=True)
            os.write(2, ("raw fd 2 " + token.text() + "\\n").encode())
            os.write(1, ("raw fd 1 " + token.text() + "\\n").encode())
        raise BackendError("stopping after printing")

    @tool(mode="read")
    async def ping(self) -> str:
        \"\"\"Answer.\"\"\"
        return "pong"
"""


def test_what_a_module_prints_during_startup_reaches_stderr_scrubbed(tmp_path: Path) -> None:
    """A module that prints its credential during startup (print to stdout or stderr, or a raw
    write to fd 1 or 2) has every line on stderr with the value redacted, and nothing on stdout."""
    modules = tmp_path / "mods"
    modules.mkdir()
    (modules / "printing_startup.py").write_text(PRINTING_STARTUP)
    manifest = tmp_path / "manifest.yml"
    manifest.write_text(
        "agent_type: research\nmodules:\n  printing:\n    type: printing_startup:PrintingStartup\n"
    )
    token = "tok" + secrets.token_urlsafe(24)
    env = child_env(
        tmp_path / "home", modules, AGENT_ID="print-01", AGENT_TYPE="research", API_TOKEN=token
    )
    result = run_cli("--manifest", str(manifest), env=env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert token not in result.stderr
    for line in ("print to stdout", "print to stderr", "raw fd 2", "raw fd 1"):
        assert f"{line} [REDACTED]" in result.stderr, result.stderr
