"""Secrets review: leases that must not be orphaned, forms of a secret that must be scrubbed.

Each test pins one rule the credential broker and the redactor keep, found missing in review.
"""

from __future__ import annotations

import base64
import secrets
import threading
from pathlib import Path
from urllib.parse import quote

import anyio
import anyio.to_thread
import pytest

from scoped_mcp.credentials.backends.interface import Fetched
from scoped_mcp.credentials.broker import CredentialBroker
from scoped_mcp.credentials.plan import KeyPlan
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.credentials.view import ModuleCredentials
from scoped_mcp.redaction import Redactor
from scoped_mcp.testing.memory_backend import MemoryBackend
from tests.contract_support import child_env
from tests.support import run_cli

pytestmark = pytest.mark.anyio


class GatedBackend(MemoryBackend):
    """Holds its first fetch (in the broker's worker thread) until the test releases it."""

    def __init__(self, **kwargs: float) -> None:
        super().__init__(**kwargs)
        self.entered = threading.Event()
        self.release = threading.Event()
        self._gate = True

    def fetch(self, ref: SecretRef) -> Fetched:
        if self._gate:
            self._gate = False
            self.entered.set()
            self.release.wait(5)
        return super().fetch(ref)


def broker_for(backend: MemoryBackend, keys: dict[str, str]) -> CredentialBroker:
    plans = {
        "mod": {
            key: KeyPlan("mod", key, SecretRef("mem", *ref.split("#")), required=True)
            for key, ref in keys.items()
        }
    }
    return CredentialBroker(plans=plans, backends={"mem": backend}, ttl=300, redactor=Redactor())


async def test_overlapping_fetches_of_a_dynamic_source_leave_no_lease_unrevoked() -> None:
    """Two reads of one dynamic source that overlap (a seed-style ``credentials[KEY]`` while an
    async ``use`` is still fetching) issue two leases; the one the cache drops is still revoked."""
    backend = GatedBackend(lease_ttl=60)
    backend.sources["db"] = {"password": "pw-123456"}
    backend.dynamic.add("db")
    broker = broker_for(backend, {"PASSWORD": "db#password"})
    view = ModuleCredentials(broker, "mod", frozenset())

    async def use_async() -> None:
        async with view.use("PASSWORD"):
            pass

    async with anyio.create_task_group() as group:
        group.start_soon(use_async)
        await anyio.to_thread.run_sync(backend.entered.wait, 5)
        assert view["PASSWORD"].startswith("pw-123456")  # the seed-style read, on the loop
        backend.release.set()
    await broker.close()
    assert backend.fetches == 2
    assert sorted(backend.revoked) == ["db/1", "db/2"]


def test_a_url_credentials_password_is_scrubbed_in_every_form_it_is_sent() -> None:
    """A URL credential with ``user:password@`` is sent as HTTP Basic (``BrokerAuth``): the
    password alone, percent-encoded, and the Basic header value are scrubbed, not only the URL."""
    password = "pw-" + secrets.token_hex(8) + "/+"
    redactor = Redactor()
    redactor.add(f"https://alice:{quote(password, safe='')}@ntfy.example/topic")
    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    for text in (
        f"bad password {password}",
        f"password={quote(password, safe='')}",
        f"echo: Authorization: Basic {basic}",
    ):
        scrubbed = redactor.scrub(text)
        assert password not in scrubbed
        assert quote(password, safe="") not in scrubbed
        assert basic not in scrubbed


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
