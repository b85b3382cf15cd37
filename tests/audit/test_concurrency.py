"""Records finishing at once: one whole line each, and a chain with no fork or gap."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest
import yaml

from tests.audit.helpers import lines, open_log, records, verify
from tests.contract_support import FIXTURES
from tests.support import running_server


def test_threads_writing_at_once_give_one_chain(tmp_path: Path) -> None:
    """Eight threads writing 200 records each (with rotation) leave a chain that verifies."""
    path = tmp_path / "a.jsonl"
    log = open_log(path, max_bytes=64 * 1024, keep=50)
    start = threading.Barrier(8)

    def writer(n: int) -> None:
        start.wait()
        for i in range(200):
            log.record("tool_call", tool=f"t{n}", outcome="ok", duration_ms=float(i))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    files = [*sorted(tmp_path.glob("a.jsonl.*"), key=lambda p: -int(p.suffix[1:])), path]
    assert len(files) > 2
    result = verify(*files, home=tmp_path / "home")
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("1600 records, chain intact")


@pytest.mark.anyio
@pytest.mark.stdio
async def test_concurrent_calls_through_the_server_give_a_complete_chain(tmp_path: Path) -> None:
    """Forty calls at once through the real stdio server: one record per call, chain intact."""
    manifest = tmp_path / "m.yml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "agent_type": "auditor",
                "modules": {"probe": {"type": "custom_modules.probe:ProbeModule"}},
            }
        )
    )
    home = tmp_path / "home"
    async with running_server(
        manifest,
        agent_id="audit-01",
        agent_type="auditor",
        extra_env={"PYTHONPATH": str(FIXTURES)},
        home=home,
    ) as server:

        async def one(i: int) -> None:
            await server.call("probe_echo", {"text": f"call-{i:02d}"})

        async with anyio.create_task_group() as group:
            for i in range(40):
                group.start_soon(one, i)
        audit_path = server.audit_path
    found = records(audit_path)
    calls = [r for r in found if r["event"] == "tool_call"]
    assert len(calls) == 40
    assert len({r["args"]["sha256"] for r in calls}) == 40
    assert next(r["event"] for r in found) == "server_start"
    assert [r["seq"] for r in found] == list(range(len(found)))
    result = verify(audit_path, home=tmp_path / "cli")
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith(f"{len(lines(audit_path))} records, chain intact")
