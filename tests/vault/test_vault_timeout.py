"""A Vault address that accepts connections and never answers: start-up says it timed out."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scoped_mcp import server
from scoped_mcp.errors import ScopedMCPError
from scoped_mcp.identity import AgentContext
from scoped_mcp.manifest import load
from scoped_mcp.testing.harness import write_manifest
from tests.contract_support import FIXTURES


@pytest.fixture
def silent_addr() -> Iterator[str]:
    """A loopback port whose kernel completes every TCP handshake, and nothing ever answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_vault_that_never_answers_stops_start_up_saying_it_timed_out(
    silent_addr: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up stops within about the configured timeout, saying the address did not answer
    within it and naming the setting, not calling the server unreachable."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    path = tmp_path / "manifest.yml"
    vault = {"addr": silent_addr, "auth": "token", "token_env": "T", "timeout": 0.3}
    write_manifest(
        path,
        {
            "agent_type": "research",
            "modules": {"vaulted": {"type": "credential_modules.vaulted:VaultedModule"}},
            "credentials": {"source": "vault", "vault": {**vault, "path": "secret/x"}},
        },
    )
    started = time.monotonic()
    with pytest.raises(ScopedMCPError) as info:
        server.build(load(path), AgentContext("slow-1", "research"), {"T": "s.not-a-real-token"})
    elapsed = time.monotonic() - started
    text = info.value.diagnostics()
    assert f"vault at {silent_addr} did not answer within 0.3s (timed out)" in text
    assert "credentials.vault.timeout" in text
    assert "unreachable at" not in text
    assert elapsed < 3.0
