"""Run the provisioning scripts of secrets_backends/ as a user would, with HOME under a temp dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BACKENDS = REPO / "secrets_backends"


def run_script(
    script: Path, *args: str, home: Path, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """Run a Python provisioning script with this interpreter, a minimal env and ``stdin``."""
    environ = {
        "HOME": str(home),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        **env,
    }
    return subprocess.run(
        [sys.executable, str(script), *args],
        env=environ,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
