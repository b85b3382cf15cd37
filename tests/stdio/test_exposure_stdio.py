"""Which leaks count as exposures: only what a tool would have sent the agent.

The real server over stdio, with the ``leaky_modules`` fixture and its loopback echo server: a
token echoed in a tool's error is a ``credential_exposed`` record (a static key: rotate it); the
same token written only to the ops log, or a call that returns no secret, is none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.contract_support import FIXTURES
from tests.stdio.test_secret_leaks import echo_url, leaks, leaky_manifest, make_secret
from tests.support import running_server

__all__ = ["echo_url"]  # the fixture, imported for this module's tests


def exposures(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["event"] == "credential_exposed"]


@pytest.mark.anyio
@pytest.mark.stdio
async def test_an_echo_in_an_error_is_an_exposure_a_log_line_is_not(
    tmp_path: Path, echo_url: tuple[str, list[str]]
) -> None:
    """An error echoing the token is recorded (keys, tool, remedy rotate); ops-log-only and
    secret-free calls are not; no record or log line holds the token in any form."""
    url, seen = echo_url
    secret = make_secret("punctuated")
    manifest = leaky_manifest(tmp_path, url, "env", secret)
    env = {"PYTHONPATH": str(FIXTURES), "API_TOKEN": secret}
    async with running_server(
        manifest, agent_id="leaky-01", agent_type="leaky", extra_env=env, home=tmp_path / "home"
    ) as server:
        assert await server.call("leaky_ping") == 200
        assert await server.call("leaky_log_it") == "logged"
        quiet = exposures(server.audit_records())
        error = await server.error("leaky_echo_error")
        records = server.audit_records()
    assert seen
    assert quiet == []
    (record,) = exposures(records)
    assert (record["key"], record["tool"], record["module"]) == (
        ["API_TOKEN"],
        "leaky_echo_error",
        "leaky",
    )
    assert (record["dynamic"], record["remedy"]) == (False, "rotate")
    assert "lease" not in record
    assert record["source"] == "env:API_TOKEN"
    assert "[REDACTED]" in error
    stderr = server.stderr()
    assert "rotate it in its backend" in stderr
    audit = server.audit_path.read_text()
    assert not leaks(secret, "error", error) + leaks(secret, "audit", audit)
    assert not leaks(secret, "stderr", stderr)
