"""The user contract of a running server: module API, stdout purity, refusals, shutdown.

One server with custom modules (a dotted ``type:``, a package written at test time, an entry point
found through a ``*.dist-info`` directory) serves most tests; raw child processes cover what a
client library would hide: every byte on stdout, exit codes, signals.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastmcp.exceptions import ToolError

from tests.contract_support import (
    FIXTURES,
    RawServer,
    assert_json_lines,
    assert_json_rpc_only,
    call,
    child_env,
    request,
)
from tests.fixtures.custom_modules.probe import FAKE_SECRET
from tests.support import ServerHandle, run_cli, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]

PROBE_TOKEN = "probe-token-value-0042"
SEED_URL = "redis://seed-user:seed-pass-9931@127.0.0.1:1/0"

TMP_PACKAGE = '''
from __future__ import annotations

from scoped_mcp.modules._base import ToolModule, tool


class Shout(ToolModule):
    """A module written to a temporary directory by the test."""

    name = "shout"

    @tool(mode="read")
    async def upper(self, text: str) -> str:
        """Upper-case the text."""
        return text.upper()
'''


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """One event loop for the module, so one server serves many tests."""
    return "asyncio"


def _entry_point_dir(top: Path) -> Path:
    """A directory holding only a dist-info that registers 'epnotify' in scoped_mcp.modules."""
    site = top / "ep-site"
    info = site / "fixture_entry_point-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fixture-entry-point\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[scoped_mcp.modules]\nepnotify = custom_modules.notify:NotifyModule\n"
    )
    return site


def _tmp_package_dir(top: Path) -> Path:
    """A directory holding the package 'tmpmods' with the module class 'Shout'."""
    site = top / "tmp-site"
    (site / "tmpmods").mkdir(parents=True)
    (site / "tmpmods" / "__init__.py").write_text("")
    (site / "tmpmods" / "shout.py").write_text(TMP_PACKAGE.lstrip())
    return site


@dataclass
class Probe:
    """The shared server and where it keeps things."""

    server: ServerHandle
    top: Path


@pytest.fixture(scope="module")
async def probe(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Probe]:
    """One server: probe (write), reader (probe class, read), seed-style, entry point, tmp pkg."""
    top = tmp_path_factory.mktemp("contract")
    manifest = top / "probe.yml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "agent_type": "probe",
                "modules": {
                    "probe": {"type": "custom_modules.probe:ProbeModule", "mode": "write"},
                    "reader": {"type": "custom_modules.probe:ProbeModule", "mode": "read"},
                    "seedstyle": {"type": "custom_modules.probe:SeedStyleModule"},
                    "epnotify": {},
                    "shout": {"type": "tmpmods.shout:Shout"},
                },
            }
        )
    )
    paths = [FIXTURES, _entry_point_dir(top), _tmp_package_dir(top)]
    env = {
        "PYTHONPATH": ":".join(str(p) for p in paths),
        "PROBE_TOKEN": PROBE_TOKEN,
        "SEED_URL": SEED_URL,
    }
    async with running_server(
        manifest, agent_id="agent-01", agent_type="probe", extra_env=env, home=top / "home"
    ) as server:
        yield Probe(server, top)


PROBE_READ = [
    "echo",
    "scoped_key",
    "loaded_modules",
    "credential_length",
    "boom",
    "deny",
    "backend_down",
    "nap",
]


async def test_tool_names_follow_module_and_mode(probe: Probe) -> None:
    """Tools are {module}_{tool}; write mode adds write tools, read mode and default omit them."""
    expected = (
        [f"probe_{t}" for t in [*PROBE_READ, "store"]]
        + [f"reader_{t}" for t in PROBE_READ]
        + ["seedstyle_get_key", "seedstyle_url_length", "epnotify_send", "shout_upper"]
    )
    assert await probe.server.tool_names() == sorted(expected)


async def test_entry_point_and_tmp_package_modules_work(probe: Probe) -> None:
    """Modules found through the entry-point group and a dotted path on PYTHONPATH are callable."""
    assert await probe.server.call("epnotify_send", {"message": "hello"}) == "sent 5 characters"
    assert await probe.server.call("shout_upper", {"text": "hi"}) == "HI"


async def test_docstrings_and_type_hints_become_the_tool_schema(probe: Probe) -> None:
    """The docstring is the description; names, types, defaults and required come from hints."""
    tools = {t.name: t for t in await probe.server.client.list_tools()}
    echo = tools["probe_echo"]
    assert echo.description is not None
    assert echo.description.startswith("Return the text repeated.")
    schema = echo.input_schema
    assert schema["properties"]["text"]["type"] == "string"
    assert schema["properties"]["times"]["type"] == "integer"
    assert schema["properties"]["times"]["default"] == 1
    assert schema["required"] == ["text"]
    store = tools["probe_store"].input_schema
    assert store["properties"]["key"]["type"] == "string"
    assert sorted(store["required"]) == ["key", "value"]
    assert tools["probe_store"].annotations is not None
    assert tools["probe_store"].annotations.read_only_hint is False
    assert tools["probe_echo"].annotations is not None
    assert tools["probe_echo"].annotations.read_only_hint is True


async def test_scoped_parameters_pass_through_the_strategy(probe: Probe) -> None:
    """A ScopedStr parameter reaches the tool body already scoped (NamespaceScope: agent-01:key)."""
    assert await probe.server.call("probe_scoped_key", {"key": "key"}) == "agent-01:key"
    stored = await probe.server.call("probe_store", {"key": "k2", "value": "abc"})
    assert stored == {"key": "agent-01:k2", "size": 3}


async def test_scope_refusal_stops_the_call_before_the_body(probe: Probe) -> None:
    """A value the strategy refuses never reaches the body; the agent gets the short reason."""
    text = await probe.server.error("probe_scoped_key", {"key": "a\x00b"})
    assert "NUL" in text
    record = probe.server.audit_records()[-1]
    assert (record["tool"], record["outcome"]) == ("probe_scoped_key", "denied")


async def test_seed_style_module_works_unchanged(probe: Probe) -> None:
    """A module written as the seed README shows (credentials in __init__, manual scoping) works."""
    assert await probe.server.call("seedstyle_get_key", {"key": "k"}) == "agent-01:k"
    assert await probe.server.call("seedstyle_url_length") == len(SEED_URL)


async def test_declared_credential_is_readable_undeclared_is_refused(probe: Probe) -> None:
    """credentials[KEY] works for a declared key and raises for any other, naming the key."""
    length = await probe.server.call("probe_credential_length", {"key": "PROBE_TOKEN"})
    assert length == len(PROBE_TOKEN)
    text = await probe.server.error("probe_credential_length", {"key": "SEED_URL"})
    assert "SEED_URL" in text
    assert "did not declare" in text
    assert "seed-pass" not in text


async def test_only_named_modules_are_imported(probe: Probe) -> None:
    """Built-in modules the manifest does not name are never imported."""
    loaded = await probe.server.call("probe_loaded_modules")
    assert "scoped_mcp.modules._base" in loaded
    assert "scoped_mcp.modules.filesystem" not in loaded
    assert "scoped_mcp.modules.sqlite" not in loaded


async def test_unexpected_exception_shows_only_a_reference(probe: Probe) -> None:
    """An arbitrary exception reaches the agent as 'internal error (ref X)': no text, no secret."""
    text = await probe.server.error("probe_boom")
    assert text.startswith("probe_boom failed: internal error (ref ")
    ref = text.rsplit("ref ", 1)[1].rstrip(")")
    assert FAKE_SECRET not in text
    assert "/etc/probe" not in text
    assert "RuntimeError" not in text
    record = probe.server.audit_records()[-1]
    assert record["outcome"] == "error"
    assert record["error"] == f"internal error (ref {ref})"
    stderr = probe.server.stderr()
    assert ref in stderr
    for leaked in ("Traceback", FAKE_SECRET, "/etc/probe", "rejected reading"):
        assert leaked not in stderr
        assert leaked not in probe.server.audit_path.read_text()


async def test_scope_violation_is_shown_and_denied(probe: Probe) -> None:
    """A ScopeViolation's own message reaches the agent and is audited as 'denied'."""
    text = await probe.server.error("probe_deny")
    assert text == "probe refuses: outside your namespace"
    record = probe.server.audit_records()[-1]
    assert (record["tool"], record["outcome"], record["error"]) == (
        "probe_deny",
        "denied",
        "probe refuses: outside your namespace",
    )


async def test_backend_error_is_shown_and_audited_as_error(probe: Probe) -> None:
    """A BackendError's message reaches the agent and is audited with outcome 'error'."""
    assert await probe.server.error("reader_backend_down") == "probe backend unavailable"
    record = probe.server.audit_records()[-1]
    assert (record["module"], record["outcome"]) == ("reader", "error")


async def test_write_tool_absent_in_read_mode_is_unknown(probe: Probe) -> None:
    """A write tool of a read-mode module does not exist: calling it is an unknown-tool denial."""
    assert await probe.server.error("reader_store", {"key": "k", "value": "v"}) == "unknown tool"
    record = probe.server.audit_records()[-1]
    assert (record["tool"], record["outcome"]) == ("reader_store", "denied")


async def test_credential_values_never_reach_the_agent(probe: Probe) -> None:
    """A tool that returns a credential value gets it redacted on the way out."""
    result = await probe.server.call("probe_echo", {"text": PROBE_TOKEN})
    assert PROBE_TOKEN not in result
    assert "[REDACTED]" in result


async def test_ops_log_is_json_lines(probe: Probe) -> None:
    """Everything the server wrote to stderr while serving is one JSON object per line."""
    with pytest.raises(ToolError):
        await probe.server.call("probe_boom")
    records = assert_json_lines(probe.server.stderr())
    assert any(r.get("message") == "serving" for r in records)
    assert all({"timestamp", "level", "logger", "message"} <= set(r) for r in records)


# --- stdout purity ---------------------------------------------------------------------------


def _noisy_manifest(top: Path) -> Path:
    manifest = top / "noisy.yml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "agent_type": "noisy",
                "modules": {
                    "noisy": {"type": "custom_modules.noisy:NoisyModule"},
                    "probe": {"type": "custom_modules.probe:ProbeModule", "mode": "write"},
                },
            }
        )
    )
    return manifest


def test_stdout_carries_only_json_rpc(tmp_path: Path) -> None:
    """Module prints at import, start-up, in a tool and at shutdown go to stderr, never stdout."""
    env = child_env(tmp_path / "home", AGENT_ID="noisy-01", AGENT_TYPE="noisy")
    server = RawServer.start(["--manifest", str(_noisy_manifest(tmp_path))], env=env, cwd=tmp_path)
    try:
        server.handshake()
        tools = server.ask(request(2, "tools/list"))["result"]["tools"]
        assert "noisy_shout" in [t["name"] for t in tools]
        reply = server.ask(call(3, "noisy_shout"))
        assert reply["result"]["isError"] is False
        assert server.ask(call(4, "probe_boom"))["result"]["isError"] is True
        assert server.ask(call(5, "no_such_tool"))["result"]["isError"] is True
        server.send({"jsonrpc": "2.0", "id": 6, "method": "no/such/method"})
        server.send({"jsonrpc": "2.0", "method": "notifications/unknown"})
        assert server.close() == 0
    finally:
        server.kill()
    assert_json_rpc_only(server.stdout_lines)
    assert not any("NOISY" in line for line in server.stdout_lines)
    stderr = server.stderr()
    for marker in ("IMPORT", "INIT", "STARTUP", "TOOL", "SHUTDOWN"):
        assert f"NOISY-{marker} stdout text" in stderr


def test_garbage_on_stdin_gets_only_json_rpc_back(tmp_path: Path) -> None:
    """Non-JSON input lines are answered (if at all) with JSON-RPC, and the server keeps serving."""
    env = child_env(tmp_path / "home", AGENT_ID="noisy-01", AGENT_TYPE="noisy")
    server = RawServer.start(["--manifest", str(_noisy_manifest(tmp_path))], env=env, cwd=tmp_path)
    try:
        server.handshake()
        assert server.process.stdin is not None
        server.process.stdin.write('this is not json\n{"jsonrpc": "2.0"\n')
        server.process.stdin.flush()
        reply = server.ask(call(7, "probe_echo", text="still here"))
        assert reply["result"]["structuredContent"] == {"result": "still here"}
        assert server.close() == 0
    finally:
        server.kill()
    assert_json_rpc_only(server.stdout_lines)


# --- start-up refusals -------------------------------------------------------------------------

GOOD = "agent_type: build\nmodules:\n  filesystem:\n    mode: write\n    config: {base_path: d}\n"


@dataclass(frozen=True)
class Refusal:
    """One start-up that must be refused: manifest text (None: no file), env, expected text."""

    manifest: str | None
    env: dict[str, str]
    expected: tuple[str, ...]


_ID = {"AGENT_ID": "build-01", "AGENT_TYPE": "build"}
_WRITE_ONLY = (
    "agent_type: build\nmodules:\n  notify:\n    type: custom_modules.notify:NotifyModule\n"
)

REFUSALS: dict[str, Refusal] = {
    "agent-type-mismatch": Refusal(
        GOOD, {"AGENT_ID": "r1", "AGENT_TYPE": "research"}, ("{M}", "agent_type", "AGENT_TYPE")
    ),
    "no-agent-id": Refusal(GOOD, {"AGENT_TYPE": "build"}, ("AGENT_ID not set",)),
    "no-agent-type": Refusal(GOOD, {"AGENT_ID": "b1"}, ("AGENT_TYPE not set",)),
    "no-identity": Refusal(GOOD, {}, ("AGENT_ID and AGENT_TYPE not set",)),
    **{
        f"unsafe-id-{name}": Refusal(
            GOOD, {"AGENT_ID": value, "AGENT_TYPE": "build"}, ("AGENT_ID", "1-64 characters")
        )
        for name, value in [
            ("traversal", "../x"),
            ("slash", "a/b"),
            ("65-chars", "a" * 65),
            ("space", "a b"),
            ("unicode", "agént"),
            ("leading-dash", "-a"),
        ]
    },
    "empty-id": Refusal(GOOD, {"AGENT_ID": "", "AGENT_TYPE": "build"}, ("AGENT_ID not set",)),
    "unknown-module": Refusal(
        "agent_type: build\nmodules:\n  redis: {}\n",
        _ID,
        ("{M}:3: modules.redis: unknown module 'redis'", "built-in modules (", "sqlite"),
    ),
    "unknown-top-level-key": Refusal(
        GOOD + "colour: red\n", _ID, ("{M}:6: colour: unknown field; allowed here:", "modules")
    ),
    "unknown-module-key": Refusal(
        GOOD + "    mdoe: read\n", _ID, ("{M}:6: modules.filesystem.mdoe: unknown field",)
    ),
    "bad-mode": Refusal(
        GOOD.replace("mode: write", "mode: admin"),
        _ID,
        ("{M}:4: modules.filesystem.mode:", "'read' or 'write'"),
    ),
    "modules-list": Refusal(
        "agent_type: build\nmodules: []\n", _ID, ("{M}:2: modules:", "valid dictionary")
    ),
    "config-not-mapping": Refusal(
        "agent_type: build\nmodules:\n  filesystem:\n    config: 5\n",
        _ID,
        ("{M}:4: modules.filesystem.config:", "valid dictionary"),
    ),
    "max-file-bytes-big": Refusal(
        GOOD.replace("base_path: d}", "base_path: d, max_file_bytes: big}"),
        _ID,
        ("{M}:5: modules.filesystem.config.max_file_bytes:", "valid integer"),
    ),
    "missing-base-path": Refusal(
        "agent_type: build\nmodules:\n  filesystem:\n    config: {}\n",
        _ID,
        ("{M}:4: modules.filesystem.config.base_path: Field required",),
    ),
    "invalid-yaml": Refusal(
        "agent_type: build\nmodules:\n  filesystem: {mode: [read\n", _ID, ("{M}:", "YAML")
    ),
    "not-a-mapping": Refusal(
        "- build\n- filesystem\n", _ID, ("{M}: a manifest is a YAML mapping",)
    ),
    "no-such-file": Refusal(None, _ID, ("{M}: cannot read manifest", "No such file")),
    "read-on-write-only": Refusal(
        _WRITE_ONLY + "    mode: read\n",
        _ID,
        ("{M}:5: modules.notify.mode:", "only write tools", "remove the mode field"),
    ),
    "missing-credential": Refusal(
        "agent_type: build\nmodules:\n  tokens:\n"
        "    type: custom_modules.notify:TokenNotifyModule\n",
        _ID,
        ("X_TOKEN", "tokens", "env"),
    ),
}


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    """Run every refused start-up once, a few at a time, with initialize waiting on stdin."""
    top = tmp_path_factory.mktemp("refusals")
    stdin = "\n".join(
        json.dumps(m)
        for m in [
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "0"},
                },
            },
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            request(2, "tools/list"),
        ]
    )

    def run(name: str) -> tuple[Path, Any]:
        case = REFUSALS[name]
        manifest = top / f"{name}.yml"
        if case.manifest is not None:
            manifest.write_text(case.manifest)
        env = child_env(top / "home", **case.env)
        return manifest, run_cli("--manifest", str(manifest), env=env, input_text=stdin)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(REFUSALS, pool.map(run, REFUSALS), strict=True))


@pytest.mark.parametrize("name", list(REFUSALS))
def test_startup_refusal(refusals: dict[str, tuple[Path, Any]], name: str) -> None:
    """A refused start-up exits 2, writes nothing to stdout, and explains itself on stderr."""
    manifest, result = refusals[name]
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("scoped-mcp: ")
    for expected in REFUSALS[name].expected:
        assert expected.replace("{M}", str(manifest)) in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_credential_message_names_key_module_and_source(
    refusals: dict[str, tuple[Path, Any]],
) -> None:
    """A missing required credential names the key, the module and where it was looked for."""
    _, result = refusals["missing-credential"]
    line = next(line for line in result.stderr.splitlines() if "X_TOKEN" in line)
    assert "tokens" in line
    assert "env" in line


# --- shutdown ------------------------------------------------------------------------------------


def _start_for_shutdown(tmp_path: Path) -> tuple[RawServer, Path]:
    env = child_env(tmp_path / "home", AGENT_ID="stop-01", AGENT_TYPE="noisy")
    server = RawServer.start(["--manifest", str(_noisy_manifest(tmp_path))], env=env, cwd=tmp_path)
    server.handshake()
    assert server.ask(call(2, "probe_echo", text="x"))["result"]["isError"] is False
    audit = tmp_path / "home" / "state" / "scoped-mcp" / "audit" / "stop-01.jsonl"
    return server, audit


def _last_record(audit: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(audit.read_text().splitlines()[-1])
    return record


def test_closing_stdin_stops_cleanly(tmp_path: Path) -> None:
    """Closing stdin ends the server with exit 0 within seconds and a server_stop record."""
    server, audit = _start_for_shutdown(tmp_path)
    try:
        started = time.monotonic()
        assert server.close(timeout=5) == 0
        assert time.monotonic() - started < 5
    finally:
        server.kill()
    assert _last_record(audit)["event"] == "server_stop"
    assert "NOISY-SHUTDOWN" in server.stderr()
    assert_json_rpc_only(server.stdout_lines)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly_with_stdin_open(tmp_path: Path, signum: signal.Signals) -> None:
    """SIGTERM/SIGINT end the server with exit 0 (an orderly stop) and a server_stop record."""
    server, audit = _start_for_shutdown(tmp_path)
    try:
        server.process.send_signal(signum)
        assert server.process.wait(timeout=5) == 0
        server.drain()
    finally:
        server.kill()
    record = _last_record(audit)
    assert record["event"] == "server_stop"
    assert record["reason"] == f"signal {signum.name}"
    stderr = server.stderr()
    assert "NOISY-SHUTDOWN" in stderr
    assert "Traceback" not in stderr
    assert_json_rpc_only(server.stdout_lines)
