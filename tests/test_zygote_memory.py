"""The zygote's memory, scanned from outside after its children have used a credential.

The zygote reads only each launcher's hello; the environment and the manifest's secrets reach
the forked child alone. So no copy of a secret any child used may ever be found in the zygote,
while the same scan does find the secret in a child that is using it (the scan works).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.contract_support import RawServer, call
from tests.credentials.test_secret_memory import MaskedSecret, Scanner, Sink
from tests.zygote_support import Zygote, handshake, running_zygote

pytestmark = [
    pytest.mark.stdio,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/mem"),
]


@pytest.fixture
def zygote(tmp_path: Path) -> Iterator[Zygote]:
    (tmp_path / "z").mkdir()
    with running_zygote(tmp_path / "z") as running:
        yield running


def leaky_manifest(path: Path, credentials: dict[str, str], port: int) -> Path:
    """An agent whose one tool sends the API_TOKEN credential in an HTTP header to ``port``."""
    path.write_text(
        yaml.safe_dump(
            {
                "agent_type": "leaky",
                "credentials": credentials,
                "modules": {
                    "leaky": {
                        "type": "leaky_modules.leaky:LeakyModule",
                        "mode": "read",
                        "config": {"url": f"http://127.0.0.1:{port}"},
                    }
                },
            }
        )
    )
    return path


@pytest.mark.parametrize("source", ["file", "env"])
def test_the_zygote_never_holds_a_childs_secret(
    zygote: Zygote, tmp_path: Path, source: str
) -> None:
    """After two children used a file or environment credential, the child being scanned holds
    it and the zygote holds no copy of it."""
    secret = MaskedSecret()
    extra: dict[str, str] = {}
    if source == "file":
        secret.write_yaml(tmp_path / "secrets.yml", "API_TOKEN")
        credentials = {"source": "file", "path": str(tmp_path / "secrets.yml")}
    else:
        # The launcher's environment is the one place the test must hold the plaintext.
        extra["API_TOKEN"] = secret.plaintext().decode()
        credentials = {"source": "env"}
    sink = Sink()
    manifest = leaky_manifest(tmp_path / "leaky.yml", credentials, sink.port)
    in_child = []
    try:
        for number in range(2):
            home = tmp_path / f"home-{number}"
            env = zygote.env(home, AGENT_ID=f"mem-{number}", AGENT_TYPE="leaky", **extra)
            server = RawServer.start(["--manifest", str(manifest)], env=env, cwd=tmp_path)
            try:
                handshake(server)
                for request_id in range(10, 15):
                    reply = server.ask(call(request_id, "leaky_ping"))
                    assert reply["result"]["structuredContent"]["result"] == 204
                [child] = zygote.wait_for_children(1)
                scanner = Scanner(secret, pid=child)
                try:
                    in_child.append(len(scanner.find()))
                finally:
                    scanner.close()
                assert server.close() == 0
            finally:
                server.kill()
        zygote.wait_for_children(0)
        scanner = Scanner(secret, pid=zygote.process.pid)
        try:
            in_zygote = scanner.find()
        finally:
            scanner.close()
    finally:
        sink.close()
    assert min(in_child) >= 1, "the scan found the secret in no child: it proves nothing"
    assert in_zygote == []
