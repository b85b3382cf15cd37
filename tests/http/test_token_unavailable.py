"""When the bearer token cannot be read, requests are refused as the server's fault (503)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from tests.http.support import TOKEN, serving


def test_an_unreadable_token_source_is_503_not_counted_against_the_client(
    tmp_path: Path, write_manifest: Callable[..., Path]
) -> None:
    """The token's file vanishes: past the credential TTL, the right token gets 503 (audited
    as token unavailable), not 401, and twelve such requests do not rate-limit the client;
    once the file is back, the token works again."""
    secrets_file = tmp_path / "secrets.yml"
    secrets_file.write_text(f"TOKEN: {TOKEN}\n")
    os.chmod(secrets_file, 0o600)
    manifest = write_manifest(
        {
            "agent_type": "build",
            "modules": {"filesystem": {"mode": "read", "config": {"base_path": str(tmp_path)}}},
            "credentials": {"ttl": 1},
            "serve": {"http": {"token": f"file:{secrets_file}#TOKEN"}},
        }
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serving(manifest, tmp_path / "home", agent_type="build") as server, server.http() as http:
        assert http.post("/mcp", json={}, headers=auth).status_code != 401
        secrets_file.unlink()
        time.sleep(1.5)  # past the TTL: the next request re-reads the file, and cannot
        statuses = [http.post("/mcp", json={}, headers=auth).status_code for _ in range(12)]
        secrets_file.write_text(f"TOKEN: {TOKEN}\n")
        os.chmod(secrets_file, 0o600)
        deadline = time.monotonic() + 30
        while http.post("/mcp", json={}, headers=auth).status_code == 503:
            assert time.monotonic() < deadline, "the token did not come back"
            time.sleep(0.5)
        back = http.post("/mcp", json={}, headers=auth).status_code
    assert statuses == [503] * 12
    assert back not in (401, 429, 503)
    reasons = {r["reason"] for r in server.audit_records("http_refused")}
    assert reasons == {"token unavailable"}
