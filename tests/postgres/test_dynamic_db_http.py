"""Dynamic PostgreSQL credentials through the real server over streamable HTTP: the lease is
revoked at SIGTERM, as over stdio (tests/postgres/test_dynamic_db.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.contract_support import FIXTURES
from tests.http.support import TOKEN, serving
from tests.postgres.conftest import ROWS, Database
from tests.postgres.test_dynamic_db import pgprobe_manifest, sha256
from tests.stdio.test_secret_leaks import leaks

pytestmark = pytest.mark.anyio
AGENT_ID = "http-01"


async def test_sigterm_over_http_revokes_the_leased_database_role(
    database: Database, tmp_path: Path
) -> None:
    """Over HTTP a tool logs in with a leased role; after SIGTERM the role is gone from
    PostgreSQL, the revocation is audited, and neither the role nor its password was shown."""
    role = f"agent-{AGENT_ID}"
    database.add_role(role, default_ttl="1m", max_ttl="5m")
    manifest = pgprobe_manifest(tmp_path, database)
    data = yaml.safe_load(manifest.read_text())
    data["serve"] = {"http": {"token": "env:SCOPED_MCP_HTTP_TOKEN"}}
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {"PYTHONPATH": str(FIXTURES), "VAULT_TOKEN": database.token(role)}
    before = database.postgres.issued_credentials()
    with serving(
        manifest, tmp_path / "home", agent_type="research", agent_id=AGENT_ID, env=env
    ) as server:
        async with server.client() as client:
            answer = (await client.call_tool("pgprobe_whoami", {})).structured_content
        ((user, password),) = database.postgres.issued_credentials().items() - before.items()
        assert database.postgres.role_exists(user)
        assert server.stop() == 0
    assert answer == {"user_sha256": sha256(user), "rows": len(ROWS)}
    assert not database.postgres.role_exists(user), "the lease must be revoked at SIGTERM"
    credential = {r["action"]: r for r in server.audit_records("credential") if r.get("lease")}
    assert credential["issued"]["lease"] == credential["revoked"]["lease"]
    seen = server.audit_path.read_text() + server.stderr()
    for secret in (user, password, TOKEN):
        assert leaks(secret, "audit and ops log", seen) == []
