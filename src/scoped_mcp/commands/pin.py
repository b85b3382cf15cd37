"""``scoped-mcp pin --manifest M [--module KEY]``: pin the upstream tools of ``mcp_proxy`` modules.

Each selected module's upstream is started exactly as serving would start it (the agent named by
``AGENT_ID``/``AGENT_TYPE``, credentials from the broker, the module's own transport), its tools
are listed and it is stopped. Every allowlisted tool's name, digest and full description is
printed for review, and the pins are written to ``<manifest stem>.pins.yml`` beside the manifest.
Modules not selected keep the entries they had. Nothing is written when any selected upstream
fails or lacks an allowlisted tool. Output passes the redactor: no credential is printed.

Exit codes: 0 pins written, 1 an upstream failed or lacks a tool, 2 configuration error.
"""

from __future__ import annotations

import os
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import mcp_types

from scoped_mcp.errors import ManifestError, ScopedMCPError
from scoped_mcp.modules.mcp_proxy import pins
from scoped_mcp.modules.mcp_proxy.module import McpProxyModule

EXIT_OK, EXIT_FAILED = 0, 1


def run(path: str, *, module: str | None, environ: Mapping[str, str]) -> int:
    """Pin the selected modules' tools; print what was pinned; the exit code."""
    import anyio

    from scoped_mcp import server
    from scoped_mcp.commands.serve import check_agent_type
    from scoped_mcp.hardening import scrubbed_output
    from scoped_mcp.identity import AgentContext
    from scoped_mcp.manifest import load
    from scoped_mcp.opslog import configure
    from scoped_mcp.redaction import Redactor

    redactor = Redactor()
    configure(redactor)
    agent_ctx = AgentContext.from_env(environ)
    manifest = load(path)
    check_agent_type(manifest.agent_type, agent_ctx.agent_type, path)
    assert manifest.source_path is not None
    lock = pins.lock_path(manifest.source_path)
    existing = pins.read(lock) or {}
    with scrubbed_output(redactor.scrub):
        runtime = server.build(manifest, agent_ctx, environ, redactor=redactor)
    proxies = _selected(runtime.modules, module, path)

    async def collect() -> dict[str, list[mcp_types.Tool]] | None:
        listed: dict[str, list[mcp_types.Tool]] = {}
        failed = False
        try:
            for key, proxy in proxies:
                try:
                    listed[key] = await proxy.list_upstream()
                except ScopedMCPError as exc:
                    failed = True
                    _say(f"{key}: {redactor.scrub(exc.message)}", sys.stderr)
        finally:
            await server.stop_modules(runtime)
            runtime.audit.close()
        return None if failed else listed

    with scrubbed_output(redactor.scrub):
        listed = anyio.run(collect)
    if listed is None:
        _say("no pins written", sys.stderr)
        return EXIT_FAILED
    updated = dict(existing)
    missing = False
    for key, proxy in proxies:
        found = _pins_of(key, proxy, listed[key], existing.get(key, {}), redactor.scrub)
        if found is None:
            missing = True
        else:
            updated[key] = found
    if missing:
        _say("no pins written", sys.stderr)
        return EXIT_FAILED
    _write(lock, pins.render(updated))
    _say(f"wrote {lock}", sys.stdout)
    return EXIT_OK


def _selected(
    modules: Sequence[tuple[str, object]], key: str | None, path: str
) -> list[tuple[str, McpProxyModule]]:
    proxies = [(k, m) for k, m in modules if isinstance(m, McpProxyModule)]
    if key is not None:
        proxies = [(k, m) for k, m in proxies if k == key]
        if not proxies:
            raise ManifestError(
                f"{path}: modules.{key} is not an mcp_proxy module of this manifest",
                fix="name one of: "
                + ", ".join(k for k, m in modules if isinstance(m, McpProxyModule)),
            )
    if not proxies:
        raise ManifestError(f"{path}: no mcp_proxy module to pin", fix="nothing to do")
    return proxies


def _pins_of(
    key: str,
    proxy: McpProxyModule,
    listed: list[mcp_types.Tool],
    before: Mapping[str, pins.Pin],
    scrub: Callable[[str], str],
) -> dict[str, pins.Pin] | None:
    """The module's new pins, printed for review; ``None`` when an allowlisted tool is missing."""
    upstream = {tool.name: tool for tool in listed}
    missing = sorted(set(proxy.cfg.tools) - set(upstream))
    if missing:
        _say(
            f"{key}: the upstream has no tool {', '.join(map(repr, missing))}; it offers: "
            + ", ".join(sorted(upstream)[:50]),
            sys.stderr,
        )
        return None
    found: dict[str, pins.Pin] = {}
    _say(f"module {key}", sys.stdout)
    for name in sorted(proxy.cfg.tools):
        pin = pins.pin_of(upstream[name], scrub)
        found[name] = pin
        previous = before.get(name)
        status = (
            "new" if previous is None else "same" if previous.digest == pin.digest else "CHANGED"
        )
        _say(f"  tool {name}  {pin.digest}  ({status})", sys.stdout)
        for line in (pin.description or "(no description)").split("\n"):
            _say(f"    | {shown(line)}", sys.stdout)
        _say(f"    schema {shown(pin.input_schema)}", sys.stdout)
    return found


def shown(text: str) -> str:
    """``text`` with every control, format or unassigned character (terminal escapes, carriage
    returns, bidirectional overrides, zero-width characters) as a visible ``\\uXXXX``: what the
    operator reviews is all there is."""
    return "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char)[0] in "CZ" and char != " " else char
        for char in text
    )


def _write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (a reader sees the old file or the new one)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _say(text: str, out: TextIO) -> None:
    print(text, file=out)
