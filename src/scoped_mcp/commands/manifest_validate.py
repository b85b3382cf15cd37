"""``scoped-mcp manifest validate M...``: plan each manifest as the server would; ok or why not."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from scoped_mcp.errors import ScopedMCPError

EXIT_OK, EXIT_CONFIG = 0, 2


def run(paths: Sequence[str]) -> int:
    """``ok`` per valid manifest on stdout, the diagnostics of each invalid one on stderr."""
    from scoped_mcp import registry
    from scoped_mcp.manifest import load

    failed = 0
    for path in paths:
        try:
            manifest = load(path)
            planned = registry.plan(manifest)
            if manifest.approvals is not None:
                from scoped_mcp.approvals.build import check_rules

                check_rules(manifest, planned)
        except ScopedMCPError as exc:
            failed += 1
            print(f"{path}: invalid\n  {exc.diagnostics()}", file=sys.stderr)
        else:
            print(f"{path}: ok")
    return EXIT_CONFIG if failed else EXIT_OK
