"""Command line: ``scoped-mcp [serve] --manifest M`` and the operator commands.

This file parses and dispatches; every sub-command lives in ``scoped_mcp.commands``.
Nothing here writes to stdout while serving: stdout carries MCP messages and nothing else.
Exit codes: 0 success, 1 unexpected failure, 2 configuration error (manifest, identity,
credentials).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from scoped_mcp import __version__
from scoped_mcp.errors import ScopedMCPError
from scoped_mcp.zygote import FASTMCP_ENV

if TYPE_CHECKING:
    from scoped_mcp.commands.serve import HttpOptions

EXIT_FAILURE, EXIT_CONFIG = 1, 2

_FASTMCP_ENV = FASTMCP_ENV  # the name bench/run.py and older callers import


@functools.cache
def command_parser() -> argparse.ArgumentParser:
    """The command line's parser, built once per process (a zygote builds it for its children:
    every sub-command's parser is about 1 MiB of objects)."""
    parser = argparse.ArgumentParser(
        prog="scoped-mcp",
        description="Per-agent scoped MCP tool server. Serves the agent named by AGENT_ID and "
        "AGENT_TYPE over stdio, with the tools its manifest allows.",
    )
    parser.add_argument("--version", action="version", version=f"scoped-mcp {__version__}")
    parser.add_argument("--manifest", help="manifest file (serve is the default command)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the MCP server (default); stdio unless --http")
    serve.add_argument("--manifest", dest="serve_manifest", required=True)
    _add_http_options(serve)
    tools = commands.add_parser("tools", help="list the tools an agent with this manifest gets")
    tools.add_argument("--manifest", dest="tools_manifest", required=True)
    tools.add_argument("--json", action="store_true", help="machine-readable output")
    manifest = commands.add_parser("manifest", help="manifest commands")
    manifest_commands = manifest.add_subparsers(dest="manifest_command", required=True)
    validate = manifest_commands.add_parser("validate", help="check one or more manifests")
    validate.add_argument("paths", nargs="+", metavar="MANIFEST")
    creds = commands.add_parser("creds", help="credential commands")
    creds_commands = creds.add_subparsers(dest="creds_command", required=True)
    check = creds_commands.add_parser(
        "check",
        help="say what is missing or broken for every key (never a value); "
        "exit 0 ok, 1 a required key unusable, 2 warnings only, 3 invalid manifest",
    )
    check.add_argument("--manifest", dest="creds_manifest", required=True)
    check.add_argument("--agent-id", help="the agent to check for (default: $AGENT_ID)")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument(
        "--deep",
        action="store_true",
        help="issue each dynamic (vault-dynamic:) credential once, prove it, revoke it at once",
    )
    check.add_argument(
        "--deep-pg-dsn",
        metavar="CONNINFO",
        help="with --deep: where to try a PostgreSQL login with issued database credentials, "
        "as a libpq string without user or password, e.g. 'host=db port=5432 dbname=app'",
    )
    check.add_argument(
        "--http",
        action="store_true",
        help="also check serve.http's bearer token, which only `serve --http` needs",
    )
    check.add_argument(
        "--audit",
        metavar="FILE",
        help="also list the keys this audit file records as exposed to an agent "
        "(credential_exposed) that must be rotated",
    )
    check.add_argument(
        "--spend-secret-id",
        action="store_true",
        help="accepted for compatibility, changes nothing: the check logs in with a plain "
        "AppRole secret-id by default (never a wrapped one, nor one the manifest marks "
        "secret_id_uses: limited)",
    )
    _add_audit_commands(commands)
    pin = commands.add_parser(
        "pin",
        help="start each mcp_proxy upstream as serving would, show its allowlisted tools and "
        "write their digests to <manifest stem>.pins.yml; exit 0 written, 1 an upstream failed "
        "or lacks a tool, 2 configuration error",
    )
    pin.add_argument("--manifest", dest="pin_manifest", required=True)
    pin.add_argument("--module", metavar="KEY", help="pin only this module (others keep theirs)")
    _add_approvals_commands(commands)
    _add_auth_commands(commands)
    commands.add_parser(
        "zygote",
        help="run the fork server: import the framework once, start each agent by forking "
        "(see docs/zygote.md)",
    )
    return parser


def _add_http_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--http",
        metavar="ADDR",
        help="serve streamable HTTP at [HOST:]PORT (loopback) or unix:PATH (0600) instead of "
        "stdio; requests need the bearer token named by serve.http.token in the manifest",
    )
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="with --http: allow a non-loopback address (requires --tls-cert and --tls-key)",
    )
    serve.add_argument("--tls-cert", metavar="PEM", help="with --http: TLS certificate chain")
    serve.add_argument("--tls-key", metavar="PEM", help="with --http: TLS private key")


def _add_audit_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser("audit", help="audit log commands")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify",
        help="check the hash chain; exit 0 intact, 1 broken (names the first broken record), "
        "2 unreadable",
    )
    verify.add_argument("files", nargs="+", metavar="FILE", help="oldest first: log.2 log.1 log")
    tail = audit_commands.add_parser("tail", help="print the last records for humans")
    tail.add_argument("file", metavar="FILE")
    tail.add_argument("--agent", help="only this agent_id")
    tail.add_argument("--outcome", help="only this outcome (ok, denied, error)")
    tail.add_argument("--event", help="only this event (tool_call, credential, ...)")
    tail.add_argument("-n", type=int, default=20, dest="count", help="how many (0: all; 20)")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new records")


def _add_auth_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``auth`` sub-commands (here, not in ``commands/auth``: every start builds this parser,
    and that module's imports would cost the zygote launcher some 20 ms)."""
    auth = commands.add_parser("auth", help="OAuth grants of HTTP mcp_proxy upstreams")
    sub = auth.add_subparsers(dest="auth_command", required=True)
    for name, text in (
        ("login", "log in once, in a browser, and store the grant"),
        ("status", "per OAuth module: grant stored?, scopes, access token expiry"),
        ("logout", "revoke the grant at the provider (where offered) and delete it"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--manifest", dest="auth_manifest", required=True)
        command.add_argument(
            "--module", dest="auth_module", required=name == "login", help="the module key"
        )
        command.add_argument("--agent-id", dest="auth_agent_id", help="default: $AGENT_ID")


def _add_approvals_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    approvals = commands.add_parser(
        "approvals", help="decide the approval requests of this user's running servers"
    )
    actions = approvals.add_subparsers(dest="approvals_command", required=True)
    listing = actions.add_parser("list", help="the requests waiting, on every running server")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    for name, text in (
        ("show", "one request in full"),
        ("approve", "approve a request: the identical call may then run once"),
        ("deny", "deny a request: the call is refused with the reason"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("request_id", metavar="ID")
        action.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "deny":
            action.add_argument("--reason", help="told to the agent and written to the audit log")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scoped-mcp`` command: parse, dispatch, print our errors.

    A stdio serve goes to a running zygote when one of this installation answers
    (``scoped_mcp.zygote``); otherwise, and for every other command (``serve --http`` too: the
    zygote hands over stdio only), it runs here.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    for key, value in _FASTMCP_ENV.items():
        os.environ[key] = value
    args = command_parser().parse_args(arguments)
    stdio_serve = args.command in (None, "serve") and not getattr(args, "http", None)
    if stdio_serve and (getattr(args, "serve_manifest", None) or args.manifest):
        from scoped_mcp import zygote

        code = zygote.launch(arguments, os.environ)
        if code is not None:
            return code
    return serve_in_process(arguments)


def serve_in_process(argv: Sequence[str]) -> int:
    """Parse ``argv`` and run its command in this process (a zygote's child starts here)."""
    command_line = command_parser()
    args = command_line.parse_args(argv)
    try:
        return _dispatch(command_line, args)
    except ScopedMCPError as exc:
        print(f"scoped-mcp: {exc.diagnostics()}", file=sys.stderr)
        return EXIT_CONFIG


def _http_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> HttpOptions | None:
    """The ``--http`` options given to ``serve``, or None to serve stdio."""
    from scoped_mcp.commands.serve import HttpOptions

    address = getattr(args, "http", None)
    if address is None:
        if any(getattr(args, name, None) for name in ("allow_remote", "tls_cert", "tls_key")):
            parser.error("--allow-remote, --tls-cert and --tls-key go with --http")
        return None
    return HttpOptions(address, args.allow_remote, args.tls_cert, args.tls_key)


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:  # noqa: PLR0911
    """Run the sub-command ``args`` names; each lives in ``scoped_mcp.commands``."""
    if args.command in (None, "serve"):
        path = getattr(args, "serve_manifest", None) or args.manifest
        if not path:
            parser.error("--manifest is required")
        from scoped_mcp.commands import serve

        return serve.run(path, http=_http_options(parser, args))
    if args.command == "tools":
        from scoped_mcp.commands import tools

        return tools.run(args.tools_manifest, as_json=args.json)
    if args.command == "manifest":
        from scoped_mcp.commands import manifest_validate

        return manifest_validate.run(args.paths)
    if args.command == "creds":
        from scoped_mcp.commands import creds_check

        if args.spend_secret_id:
            print(
                "scoped-mcp: --spend-secret-id is the default now and changes nothing (a "
                "limited-use secret-id is marked in the manifest: secret_id_uses: limited)",
                file=sys.stderr,
            )
        options = creds_check.Options(
            deep=args.deep, pg_dsn=args.deep_pg_dsn, audit=args.audit, http=args.http
        )
        return creds_check.run(
            args.creds_manifest,
            agent_id=args.agent_id,
            as_json=args.json,
            environ=os.environ,
            options=options,
        )
    if args.command == "pin":
        from scoped_mcp.commands import pin

        return pin.run(args.pin_manifest, module=args.module, environ=os.environ)
    if args.command == "auth":
        from scoped_mcp.commands import auth

        return auth.run(args, os.environ)
    if args.command == "zygote":
        from scoped_mcp.commands import zygote

        return zygote.run(os.environ)
    if args.command == "approvals":
        from scoped_mcp.commands import approvals

        return approvals.run(
            args.approvals_command,
            getattr(args, "request_id", None),
            reason=getattr(args, "reason", None),
            as_json=args.json,
            environ=os.environ,
        )
    if args.command == "audit" and args.audit_command == "verify":
        from scoped_mcp.commands import audit_verify

        return audit_verify.run(args.files)
    if args.command == "audit":
        from scoped_mcp.commands import audit_tail

        filters = audit_tail.Filters(agent=args.agent, outcome=args.outcome, event=args.event)
        return audit_tail.run(args.file, filters=filters, count=args.count, follow=args.follow)
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
