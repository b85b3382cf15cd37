"""The ``scoped-mcp`` command's entry point: hand a plain stdio serve to a zygote, or start here.

Agent hosts run ``scoped-mcp --manifest M`` once per agent, and with a zygote this process then
only waits for its child as long as the agent runs. So it decides from ``argv`` alone, imports
nothing but ``scoped_mcp.zygote`` (which imports only what the interpreter has built in), and
imports the CLI and its parser only when the start runs here.
"""

from __future__ import annotations

import os
import sys

from scoped_mcp import zygote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def stdio_serve(argv: Sequence[str]) -> bool:
    """Whether ``argv`` is plainly a stdio serve: ``[serve] --manifest M`` (or ``--manifest=M``)
    and nothing else. Anything else (``--http``, help, an abbreviation) is parsed in-process,
    where argparse decides; a zygote's child parses the same argv with the same parser."""
    rest = list(argv)
    if rest[:1] == ["serve"]:
        rest = rest[1:]
    if len(rest) == 1 and rest[0].startswith("--manifest="):
        return len(rest[0]) > len("--manifest=")
    return len(rest) == 2 and rest[0] == "--manifest" and not rest[1].startswith("-")


def main() -> int:
    """The ``scoped-mcp`` command: a plain stdio serve goes to a zygote when one of this
    installation answers; every other start, and a start no zygote takes, runs in-process."""
    argv = sys.argv[1:]
    if stdio_serve(argv):
        os.environ.update(zygote.FASTMCP_ENV)
        code = zygote.launch(argv, os.environ)
        if code is not None:
            return code
        from scoped_mcp import cli

        return cli.serve_in_process(argv)
    from scoped_mcp import cli

    return cli.main(argv)
