"""The file: grant store: private, atomic, locked, and never quoting what it holds."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from scoped_mcp.errors import BackendMisconfigured, InsecureSource
from scoped_mcp.oauth.grant import Grant
from scoped_mcp.oauth.store.file import FileStore

SECRET = "refresh-" + "q7Zp3" * 6


def grant(refresh: str = SECRET) -> Grant:
    return Grant(
        server_url="https://mcp.example.org/mcp",
        resource="https://mcp.example.org/mcp",
        token_endpoint="https://auth.example.org/token",
        client_id="client-1",
        access_token="access-" + "x1y2z3" * 5,
        refresh_token=refresh,
    )


def test_written_0600_in_a_0700_directory_and_read_back(tmp_path: Path) -> None:
    """A new store is a 0600 file in a 0700 directory; it reads back what was written."""
    store = FileStore(tmp_path / "new" / "grant.json")
    written = grant()
    with store.locked():
        store.write(written)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert store.read() == written
    assert SECRET not in repr(store.read())
    assert SECRET not in str(store.read())


def test_a_readable_store_is_refused_with_the_chmod(tmp_path: Path) -> None:
    """A store others can read is refused, naming the chmod that fixes it."""
    store = FileStore(tmp_path / "grant.json")
    store.write(grant())
    store.path.chmod(0o644)
    with pytest.raises(InsecureSource) as caught:
        store.read()
    assert f"chmod 600 {store.path}" in str(caught.value.fix)


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    """A store that is a symbolic link is not followed."""
    real = FileStore(tmp_path / "real.json")
    real.write(grant())
    (tmp_path / "link.json").symlink_to(real.path)
    with pytest.raises(BackendMisconfigured):
        FileStore(tmp_path / "link.json").read()


def test_a_corrupt_store_is_refused_without_quoting_it(tmp_path: Path) -> None:
    """Unreadable content is refused and its text (which may hold tokens) is not quoted."""
    path = tmp_path / "grant.json"
    path.write_text('{"refresh_token": "' + SECRET + '"')
    path.chmod(0o600)
    with pytest.raises(BackendMisconfigured) as caught:
        FileStore(path).read()
    assert SECRET not in str(caught.value.diagnostics())


def test_the_lock_serializes_read_modify_write(tmp_path: Path) -> None:
    """While one holder has the lock, another waits: no two rotations interleave."""
    store = FileStore(tmp_path / "grant.json")
    store.write(grant())
    order: list[str] = []

    def second() -> None:
        with FileStore(store.path).locked():
            order.append("second")

    with store.locked():
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        order.append("first")
    thread.join(timeout=30)
    assert order == ["first", "second"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".grant.json.")]


def test_keyring_store_round_trip_under_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keyring: store writes, reads back and deletes one entry, holding a 0600 lock file; the
    entry is the grant, and nothing else of the keyring changes."""
    from scoped_mcp.credentials.backends.keyring import KeyringSpec
    from scoped_mcp.identity import AgentContext
    from scoped_mcp.oauth.store import open_store

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    spec = KeyringSpec(backend="keyrings.alt.file.PlaintextKeyring")
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    store = open_store(
        "keyring:scoped-mcp/{agent_type}/oauth-gh",
        AgentContext("a1", "research"),
        where="w",
        keyring=spec,
        environ=env,
    )
    assert store.describe() == "keyring:scoped-mcp/research/oauth-gh"
    written = grant()
    with store.locked():
        assert store.read() is None
        store.write(written)
    locks = list((tmp_path / "state" / "scoped-mcp" / "oauth-locks").iterdir())
    assert len(locks) == 1
    assert stat.S_IMODE(locks[0].stat().st_mode) == 0o600
    assert store.read() == written
    from keyrings.alt.file import PlaintextKeyring

    raw = PlaintextKeyring().get_password("scoped-mcp/research", "oauth-gh")
    assert raw is not None
    assert SECRET in raw
    assert store.delete() is True
    assert store.read() is None
