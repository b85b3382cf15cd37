"""A client that sends its requests and closes stdin at once still gets every answer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.support import SCOPED_MCP, base_env


def test_requests_in_flight_at_end_of_input_are_answered(tmp_path: Path) -> None:
    """Requests written just before stdin closes are all answered before the server exits 0."""
    manifest = tmp_path / "m.yml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "agent_type": "build",
                "modules": {
                    "filesystem": {"mode": "write", "config": {"base_path": str(tmp_path)}}
                },
            }
        )
    )
    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t"}}
    init["clientInfo"]["version"] = "0"  # type: ignore[index]
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    for n in range(3, 13):
        arguments = {"path": f"f{n}.txt", "content": str(n)}
        params = {"name": "filesystem_write_file", "arguments": arguments}
        messages.append({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": params})
    env = base_env(tmp_path / "home", AGENT_ID="agent-01", AGENT_TYPE="build")
    done = subprocess.run(
        [SCOPED_MCP, "--manifest", str(manifest)],
        input="".join(json.dumps(m) + "\n" for m in messages),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answers = {json.loads(line)["id"]: json.loads(line) for line in done.stdout.splitlines()}
    assert sorted(answers) == list(range(1, 13))
    assert all("result" in answers[n] for n in range(3, 13))
    assert sorted(p.name for p in (tmp_path / "agents" / "agent-01").iterdir()) == sorted(
        f"f{n}.txt" for n in range(3, 13)
    )
