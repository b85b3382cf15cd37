"""A real Matrix homeserver (Synapse, from PyPI) on 127.0.0.1, with three users and one room.

Synapse runs from this interpreter (``python -m synapse.app.homeserver``) with a config generated
into a temp directory and then narrowed: one client listener on 127.0.0.1 and a free port, SQLite,
no federation key servers, no registration except by the shared secret, rate limits out of the
way. Users are made with Synapse's own ``register_new_matrix_user`` and log in with a password;
the bot creates an unencrypted room and the others join it. Stopped by PID at the end.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml

from tests.vault.conftest import free_port

SERVER_NAME = "localhost"
USERS = ("bot", "alice", "mallory")
_RATE = {"per_second": 1000, "burst_count": 1000}


@dataclass
class Synapse:
    """A running homeserver: its URL, and each user's access token."""

    workdir: Path
    port: int = field(default_factory=free_port)
    tokens: dict[str, str] = field(default_factory=dict)
    room: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def user_id(self, name: str) -> str:
        return f"@{name}:{SERVER_NAME}"

    def client(self, name: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[name]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, trust_env=False)

    # -- life --------------------------------------------------------------------------------

    def configure(self) -> Path:
        config = self.workdir / "homeserver.yaml"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                f"--server-name={SERVER_NAME}",
                f"--config-path={config}",
                f"--data-directory={self.workdir}",
                "--generate-config",
                "--report-stats=no",
            ],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        data = yaml.safe_load(config.read_text())
        data["listeners"] = [
            {
                "port": self.port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ]
        data.update(
            enable_registration=False,
            trusted_key_servers=[],
            suppress_key_server_warning=True,
            report_stats=False,
            enable_metrics=False,
            rc_message=_RATE,
            rc_registration=_RATE,
            rc_joins={"local": _RATE, "remote": _RATE},
            rc_invites={"per_room": _RATE, "per_user": _RATE},
            rc_login={"address": _RATE, "account": _RATE, "failed_attempts": _RATE},
        )
        config.write_text(yaml.safe_dump(data))
        return config

    def start(self) -> None:
        config = self.configure()
        log = (self.workdir / "synapse.out").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", f"--config-path={config}"],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self._wait_ready()
        for name in USERS:
            self.register(name)
        self._make_room()

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError((self.workdir / "synapse.out").read_text()[-3000:])
            try:
                if httpx.get(f"{self.url}/_matrix/client/versions", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("synapse did not become ready")

    def register(self, name: str, password: str | None = None) -> None:
        """Register ``name`` (no admin) and log it in; its access token lands in ``tokens``.

        The password goes through ``--password-file``, never argv: a generated one may start
        with "-", which argparse reads as an option.
        """
        password = secrets.token_urlsafe(12) if password is None else password
        pwfile = self.workdir / f"{name}.password"
        pwfile.write_text(password)
        tool = shutil.which("register_new_matrix_user") or str(
            Path(sys.executable).with_name("register_new_matrix_user")
        )
        config = self.workdir / "homeserver.yaml"
        argv = [tool, "-c", str(config), "-u", name, "--password-file", str(pwfile)]
        try:
            done = subprocess.run(
                [*argv, "--no-admin", self.url],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            pwfile.unlink()
        assert done.returncode == 0, done.stderr[-2000:]
        answer = httpx.post(
            f"{self.url}/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": name},
                "password": password,
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        self.tokens[name] = answer.json()["access_token"]

    def _make_room(self) -> None:
        with self.client("bot") as bot:
            created = bot.post(
                "/_matrix/client/v3/createRoom",
                json={
                    "preset": "private_chat",
                    "invite": [self.user_id(u) for u in USERS[1:]],
                    # Room version 12 ids have no ":server" part, which the matrix module's room
                    # rules (and so this channel) do not accept yet.
                    "room_version": "11",
                },
            )
            assert created.status_code == 200, created.text
            self.room = created.json()["room_id"]
        for name in USERS[1:]:
            with self.client(name) as member:
                joined = member.post(f"/_matrix/client/v3/join/{quote(self.room, safe='')}")
                assert joined.status_code == 200, joined.text

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    # -- room traffic --------------------------------------------------------------------------

    def say(self, name: str, body: str) -> None:
        """Post ``body`` to the room as ``name``."""
        txn = secrets.token_hex(8)
        path = f"/_matrix/client/v3/rooms/{quote(self.room, safe='')}/send/m.room.message/{txn}"
        with self.client(name) as member:
            sent = member.put(path, json={"msgtype": "m.text", "body": body})
            assert sent.status_code == 200, sent.text

    def messages(self) -> list[dict[str, Any]]:
        """Every message in the room, oldest first, as alice reads them."""
        path = f"/_matrix/client/v3/rooms/{quote(self.room, safe='')}/messages"
        with self.client("alice") as alice:
            answer = alice.get(path, params={"dir": "b", "limit": 100})
            assert answer.status_code == 200, answer.text
        events = [e for e in answer.json()["chunk"] if e.get("type") == "m.room.message"]
        return list(reversed(events))


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """A Synapse homeserver on 127.0.0.1 with users bot, alice and mallory in one room."""
    pytest.importorskip("synapse", reason="install matrix-synapse: pip install -e '.[dev]'")
    server = Synapse(tmp_path_factory.mktemp("synapse"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
