"""examples/claude-code/README.md's verification walkthrough, run block by block as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WALKTHROUGH = REPO / "examples" / "claude-code" / "README.md"
TOKEN = "tk_walkthrough_not_a_real_token_1234"


def steps() -> dict[int, str]:
    """The bash block after each ``<!-- step N -->`` marker of the walkthrough."""
    text = WALKTHROUGH.read_text()
    found = re.findall(r"<!-- step (\d+) -->\n```bash\n(.*?)```", text, re.DOTALL)
    return {int(number): block for number, block in found}


def run_step(block: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Run one block in bash from the checkout, as the reader would with .venv active."""
    env = {
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        ["bash", "-c", block],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_walkthrough_has_seven_steps() -> None:
    """The walkthrough's blocks are numbered 1 to 7, so none is silently skipped here."""
    assert sorted(steps()) == list(range(1, 8))


def test_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """Every step of the walkthrough gives the result the README says it gives."""
    home = tmp_path / "home"
    home.mkdir()
    blocks = steps()

    # Step 1: each agent gets only its own tools.
    out = run_step(blocks[1], home).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert names == [
        "filesystem_read_file",
        "filesystem_list_dir",
        "sqlite_query",
        "sqlite_list_tables",
        "ntfy_send",
    ]

    # Step 2: build-01 writes plan.md in its own directory.
    done = run_step(blocks[2], home)
    assert '"path": "plan.md"' in done.stdout, done.stderr
    plan = home / "scoped-mcp-example" / "files" / "agents" / "build-01" / "plan.md"
    assert plan.read_text() == "build-01 private plan"

    # Step 3: research-01 cannot read it by '..' or absolute path, and does not list it.
    out = run_step(blocks[3], home).stdout
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith("error: path leaves your directory")
    assert errors[1].startswith("error: absolute paths are not allowed")
    assert len(errors) == 2
    assert '"entries": []' in out
    assert "private plan" not in out

    # Step 4: research-01 has no write tool at all.
    done = run_step(blocks[4], home)
    assert done.returncode == 1
    assert done.stdout.startswith("error: unknown tool")

    # Step 5: the refusals are in research-01's audit log.
    assert run_step(blocks[5], home).stdout.strip() == "3"

    # Step 6: the file backend's script writes a 0600 file; creds check finds both keys usable
    # and prints neither value.
    done = run_step(blocks[6], home)
    assert done.returncode == 0, done.stdout + done.stderr
    secrets_file = home / ".config" / "scoped-mcp" / "notifier-secrets.yml"
    assert f"{secrets_file}: 2 keys, mode 0600" in done.stdout
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert re.search(r"NTFY_URL\s.*\sok\b", done.stdout)
    assert re.search(r"NTFY_TOKEN\s.*\sok\b", done.stdout)
    assert TOKEN not in done.stdout + done.stderr
    assert "127.0.0.1:9" not in done.stdout + done.stderr

    # Step 7: the token is nowhere the agent or the logs can show it.
    done = run_step(blocks[7], home)
    assert done.stdout.strip() == "token found nowhere", done.stdout
    seen = (home / "scoped-mcp-example" / "seen.txt").read_text()
    assert "ntfy_send" in seen
    assert "error: ntfy: could not connect to the server" in seen
