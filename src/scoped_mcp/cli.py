"""Command line: ``scoped-mcp [serve] --manifest M`` and the operator commands.

Nothing here writes to stdout while serving: stdout carries MCP messages and nothing else.
Exit codes: 0 success, 1 unexpected failure, 2 configuration error (manifest, identity,
credentials).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from scoped_mcp import __version__
from scoped_mcp.errors import ScopedMCPError

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
UPSTREAM_DESCRIPTION = "(proxied; the upstream server describes it at start-up)"

# FastMCP reads these when it is first imported. We own stdout and stderr: no banner, no update
# check, no rich console output, no .env file from whatever directory the agent host chose, and
# no error details to the client.
_FASTMCP_ENV = {
    "FASTMCP_SHOW_SERVER_BANNER": "false",
    "FASTMCP_CHECK_FOR_UPDATES": "off",
    "FASTMCP_ENABLE_RICH_LOGGING": "false",
    "FASTMCP_ENABLE_RICH_TRACEBACKS": "false",
    "FASTMCP_LOG_ENABLED": "false",
    "FASTMCP_ENV_FILE": os.devnull,
    "FASTMCP_MASK_ERROR_DETAILS": "true",
    "FASTMCP_DEPRECATION_WARNINGS": "false",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scoped-mcp",
        description="Per-agent scoped MCP tool server. Serves the agent named by AGENT_ID and "
        "AGENT_TYPE over stdio, with the tools its manifest allows.",
    )
    parser.add_argument("--version", action="version", version=f"scoped-mcp {__version__}")
    parser.add_argument("--manifest", help="manifest file (serve is the default command)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the stdio MCP server (default)")
    serve.add_argument("--manifest", dest="serve_manifest", required=True)
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
        "--spend-secret-id",
        action="store_true",
        help="AppRole: log in with a plain secret-id, using one of its uses (never do this with "
        "a single-use one); a wrapped secret-id is never unwrapped",
    )
    _add_audit_commands(commands)
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - a return per command
    """Entry point of the ``scoped-mcp`` command."""
    for key, value in _FASTMCP_ENV.items():
        os.environ[key] = value
    args = _parser().parse_args(argv)
    try:
        if args.command in (None, "serve"):
            path = getattr(args, "serve_manifest", None) or args.manifest
            if not path:
                _parser().error("--manifest is required")
            return _serve(path)
        if args.command == "tools":
            return _tools(args.tools_manifest, as_json=args.json)
        if args.command == "manifest":
            return _validate(args.paths)
        if args.command == "creds":
            from scoped_mcp.commands import creds_check

            options = creds_check.Options(
                deep=args.deep,
                pg_dsn=args.deep_pg_dsn,
                approle_login="plain-only" if args.spend_secret_id else "never",
            )
            return creds_check.run(
                args.creds_manifest,
                agent_id=args.agent_id,
                as_json=args.json,
                environ=os.environ,
                options=options,
            )
        if args.command == "audit":
            return _audit(args)
    except ScopedMCPError as exc:
        print(f"scoped-mcp: {exc.diagnostics()}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_FAILURE


def _serve(path: str) -> int:
    from scoped_mcp.audit import ops
    from scoped_mcp.hardening import harden_process, stdout_to_stderr
    from scoped_mcp.identity import AgentContext
    from scoped_mcp.manifest import load
    from scoped_mcp.redaction import Redactor

    not_applied = harden_process()
    redactor = Redactor()
    ops.configure(redactor)
    log = logging.getLogger("scoped_mcp.cli")
    if not_applied:
        log.warning("hardening not applied", extra={"measures": not_applied})
    # Identity and manifest first: a misconfigured agent is refused before the MCP stack loads.
    agent_ctx = AgentContext.from_env(os.environ)
    manifest = load(path)
    _check_agent_type(manifest.agent_type, agent_ctx.agent_type, path)

    import anyio

    from scoped_mcp import server

    async def run() -> None:
        with stdout_to_stderr():
            runtime = server.build(manifest, agent_ctx, os.environ, redactor=redactor)
            await server.start_modules(runtime)
        runtime.audit.record(
            "server_start", manifest=str(manifest.source_path), tools=runtime.tool_names
        )
        log.info(
            "serving", extra={"agent_id": agent_ctx.agent_id, "tools": len(runtime.tool_names)}
        )
        stopped = False

        async def stop(reason: str) -> None:
            nonlocal stopped
            if stopped:
                return
            stopped = True
            with anyio.CancelScope(shield=True), stdout_to_stderr():
                await server.stop_modules(runtime)
            runtime.audit.record("server_stop", reason=reason)
            runtime.audit.close()
            log.info("stopped", extra={"reason": reason})

        async def stop_on_signal(name: str) -> None:
            # A signal is the host's request to stop: an orderly stop is a success. The process
            # ends here because the SDK's stdin reader thread cannot be interrupted (serve_stdio).
            await stop(f"signal {name}")
            sys.stderr.flush()
            os._exit(EXIT_OK)

        try:
            await server.serve_stdio(runtime, on_signal=stop_on_signal)
        finally:
            await stop("stdin closed")

    try:
        anyio.run(run)
    except ScopedMCPError as exc:
        # A module's startup may fail quoting a credential it was given: main prints this.
        exc.message = redactor.scrub(exc.message)
        exc.fix = redactor.scrub(exc.fix) if exc.fix else exc.fix
        exc.args = (exc.message,)
        raise
    return EXIT_OK


def _audit(args: argparse.Namespace) -> int:
    if args.audit_command == "verify":
        from scoped_mcp.commands import audit_verify

        return audit_verify.run(args.files)
    from scoped_mcp.commands import audit_tail

    filters = audit_tail.Filters(agent=args.agent, outcome=args.outcome, event=args.event)
    return audit_tail.run(args.file, filters=filters, count=args.count, follow=args.follow)


def _check_agent_type(manifest_type: str, env_type: str, path: str) -> None:
    from scoped_mcp.errors import ManifestError

    if manifest_type != env_type:
        raise ManifestError(
            f"{path}: agent_type is {manifest_type!r} but AGENT_TYPE is {env_type!r}",
            fix="start this agent with the manifest written for its type, or correct AGENT_TYPE",
        )


def _tools(path: str, *, as_json: bool) -> int:
    from scoped_mcp import registry
    from scoped_mcp.manifest import load

    planned = registry.plan(load(path))
    rows = [
        {"name": t.name, "module": m.key, "mode": t.spec.mode, "description": t.description}
        for m in planned
        for t in m.tools
    ]
    rows += [
        {"name": name, "module": m.key, "mode": mode, "description": UPSTREAM_DESCRIPTION}
        for m in planned
        for name, mode in m.configured
    ]
    if as_json:
        print(json.dumps({"tools": rows}, indent=2))
    else:
        width = max((len(r["name"]) for r in rows), default=4)
        for row in rows:
            print(f"{row['name']:<{width}}  {row['mode']:<5}  {row['description']}")
    return EXIT_OK


def _validate(paths: Sequence[str]) -> int:
    from scoped_mcp import registry
    from scoped_mcp.manifest import load

    failed = 0
    for path in paths:
        try:
            registry.plan(load(path))
        except ScopedMCPError as exc:
            failed += 1
            print(f"{path}: invalid\n  {exc.diagnostics()}", file=sys.stderr)
        else:
            print(f"{path}: ok")
    return EXIT_CONFIG if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
