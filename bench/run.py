"""Benchmark: scoped-mcp against a bare FastMCP server doing the same file read.

    python bench/run.py [--calls N] [--starts N] [--json out.json] [--otel]

Measures cold start (spawn to the first ``tools/list`` answer), the round trip of a small
``filesystem_read_file`` call, and peak RSS, for scoped-mcp serving a temporary copy of
``manifests/research-agent.yml`` and for ``bench/bare_server.py``. Both are spawned with this
interpreter and the same minimal environment, driven by newline-delimited JSON-RPC over pipes (no
MCP client library in the loop), and run interleaved so machine noise falls on both alike.
Everything lives in a temporary directory that is removed at the end. ``--otel`` adds a third
server: scoped-mcp with tracing and metrics exported over OTLP/HTTP to a sink on 127.0.0.1.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from scoped_mcp.cli import _FASTMCP_ENV

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "manifests" / "research-agent.yml"
BARE_SERVER = Path(__file__).resolve().parent / "bare_server.py"
AGENT_ID = "bench-01"
PROTOCOL_VERSION = "2025-06-18"
IO_TIMEOUT = 30.0  # seconds for any one answer; a hung server fails the run instead of hanging it
WARMUP_CALLS = 50
FILE_TEXT = "The quick brown fox jumps over the lazy dog. " * 2 + "0123456789\n"  # ~100 bytes

# Largest acceptable ratio scoped-mcp / bare FastMCP; judged on the medians and on peak RSS.
TARGETS = {"cold_start": 1.10, "per_call": 1.15, "peak_rss": 1.10}


class ServerFailed(RuntimeError):
    """The server under test exited, answered with an error, or did not answer in time."""


class Session:
    """One server process driven by newline-delimited JSON-RPC over its stdin/stdout pipes."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, stderr_path: Path) -> None:
        self._stderr = stderr_path.open("ab")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env,
            cwd=cwd, bufsize=0,
        )  # fmt: skip
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self._in = self.proc.stdin
        self._out = self.proc.stdout.fileno()
        self._buf = b""
        self._next_id = 0

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        view = memoryview(data)
        while view:
            view = view[self._in.write(view) :]

    def _line(self, deadline: float) -> bytes:
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out], [], [], left)[0]:
                raise ServerFailed("no answer within the time limit")
            chunk = os.read(self._out, 65536)
            if not chunk:
                raise ServerFailed(f"server exited (code {self.proc.poll()})")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        self.send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        deadline = time.monotonic() + IO_TIMEOUT
        while True:
            message = json.loads(self._line(deadline))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise ServerFailed(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result
            # Anything else is a server notification or log message: skip it.

    def handshake(self) -> list[str]:
        """initialize, initialized, tools/list; return the tool names."""
        self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "scoped-mcp-bench", "version": "0"},
            },
        )
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return [tool["name"] for tool in self.request("tools/list", {})["tools"]]

    def read_file(self, path: str) -> str:
        result = self.request(
            "tools/call", {"name": "filesystem_read_file", "arguments": {"path": path}}
        )
        if result.get("isError"):
            raise ServerFailed(f"filesystem_read_file failed: {result['content']}")
        return str(result["content"][0]["text"])

    def peak_rss_kib(self) -> int:
        """VmHWM of the server process, in KiB (Linux /proc)."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise ServerFailed("no VmHWM in /proc status")

    def cpu_ns(self) -> int:
        """CPU time the server's live threads have used so far, in ns (Linux schedstat)."""
        total = 0
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that ended since the listing
                total += int((task / "schedstat").read_text().split()[0])
        return total

    def close(self) -> None:
        """Close stdin (the MCP way to stop a stdio server), wait briefly, then kill."""
        with contextlib.suppress(OSError):
            self._in.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc.stdout.close()  # type: ignore[union-attr]
        self._stderr.close()


@dataclass
class Subject:
    """One server under test and everything measured about it."""

    label: str
    argv: list[str]
    env: dict[str, str] | None = None  # extra variables on top of the shared environment
    starts_ms: list[float] = field(default_factory=list)
    calls_ms: list[float] = field(default_factory=list)
    cpu_ns: int = 0
    peak_rss_kib: int = 0
    tools: list[str] = field(default_factory=list)


@dataclass
class Setup:
    root: Path
    env: dict[str, str]
    manifest: Path
    with_sqlite: bool
    note: str


def prepare(root: Path) -> Setup:
    """A temp data dir with one ~100-byte file, and a copy of the research manifest pointing at it.

    The copy keeps the sqlite module only if it loads; otherwise the run is filesystem-only and
    says so, since the sqlite module may still be under construction.
    """
    data = root / "data"
    agent_dir = data / "agents" / AGENT_ID
    agent_dir.mkdir(parents=True, mode=0o700)
    (agent_dir / "note.txt").write_text(FILE_TEXT)
    (data / "sqlite").mkdir(mode=0o700)
    manifest = yaml.safe_load(MANIFEST.read_text())
    modules = manifest["modules"]
    modules["filesystem"]["config"]["base_path"] = str(data)
    if "sqlite" in modules:
        modules["sqlite"]["config"]["db_dir"] = str(data / "sqlite")
    home = root / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "LANG": "C.UTF-8",
        "AGENT_ID": AGENT_ID,
        "AGENT_TYPE": str(manifest["agent_type"]),
        **_FASTMCP_ENV,
    }
    path = root / "research-agent.yml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    problem = _manifest_problem(path, env) if "sqlite" in modules else "not in the manifest"
    if problem is None:
        note = "manifest: research-agent.yml (filesystem + sqlite), paths moved to a temp dir"
    else:
        modules.pop("sqlite", None)
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        note = (
            f"manifest: research-agent.yml WITHOUT sqlite ({problem}): filesystem only, "
            "paths moved to a temp dir"
        )
        if (why := _manifest_problem(path, env)) is not None:
            raise ServerFailed(f"the filesystem-only manifest does not validate: {why}")
    return Setup(root, env, path, problem is None, note)


def _manifest_problem(path: Path, env: dict[str, str]) -> str | None:
    """None if ``scoped-mcp manifest validate`` accepts the manifest, else its complaint."""
    if importlib.util.find_spec("scoped_mcp.modules.sqlite") is None and "sqlite:" in (
        path.read_text()
    ):
        return "scoped_mcp.modules.sqlite does not exist yet"
    argv = [sys.executable, "-m", "scoped_mcp.cli", "manifest", "validate", str(path)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    return " ".join(line.strip() for line in lines[1:3]) or f"exit code {done.returncode}"


@dataclass
class Sink:
    """What the OTLP sink received."""

    requests: int = 0
    bytes: int = 0


@contextlib.contextmanager
def otlp_sink() -> Iterator[tuple[str, Sink]]:
    """An OTLP/HTTP endpoint on 127.0.0.1 that accepts and counts every export, then drops it."""
    sink = Sink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(size)
            sink.requests += 1
            sink.bytes += size
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sink
    finally:
        server.shutdown()
        server.server_close()


def otel_subject(ours: Subject, endpoint: str) -> Subject:
    """scoped-mcp again, exporting traces and metrics to ``endpoint``."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "scoped-mcp-bench"}
    return Subject("scoped-mcp +otel", ours.argv, env)


def subjects(setup: Setup) -> tuple[Subject, Subject]:
    script = Path(sys.executable).with_name("scoped-mcp")
    if script.exists():  # the console script, run by this interpreter, exactly as hosts start it
        ours = [sys.executable, str(script), "--manifest", str(setup.manifest)]
    else:
        entry = "import sys; from scoped_mcp.cli import main; sys.exit(main())"
        ours = [sys.executable, "-c", entry, "--manifest", str(setup.manifest)]
    bare = [sys.executable, str(BARE_SERVER), str(setup.root / "data")]
    return Subject("scoped-mcp", ours), Subject("bare FastMCP", bare)


def start(subject: Subject, setup: Setup) -> tuple[Session, float]:
    """Spawn the server and complete the handshake; return the session and the time taken (ms)."""
    began = time.perf_counter()
    stderr_path = setup.root / "stderr.log"
    session = Session(subject.argv, {**setup.env, **(subject.env or {})}, setup.root, stderr_path)
    try:
        subject.tools = session.handshake()
    except ServerFailed as exc:
        session.close()
        tail = stderr_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise ServerFailed(f"{subject.label}: {exc}\n  " + "\n  ".join(tail)) from None
    except BaseException:
        session.close()
        raise
    return session, (time.perf_counter() - began) * 1000


def bench_starts(pair: tuple[Subject, ...], setup: Setup, n: int) -> None:
    for subject in pair:  # one unmeasured start each: bytecode caches and page cache warm
        start(subject, setup)[0].close()
    for i in range(n):
        order = pair if i % 2 == 0 else pair[::-1]  # A B, B A, ...: none always goes first
        for subject in order:
            session, elapsed = start(subject, setup)
            session.close()
            subject.starts_ms.append(elapsed)


def bench_calls(pair: tuple[Subject, ...], setup: Setup, n: int) -> None:
    sessions = [start(subject, setup)[0] for subject in pair]
    try:
        for session in sessions:
            text = session.read_file("note.txt")
            if text != FILE_TEXT:
                raise ServerFailed(f"unexpected file content: {text[:60]!r}")
            for _ in range(WARMUP_CALLS):
                session.read_file("note.txt")
        both = list(zip(pair, sessions, strict=True))
        cpu_before = [session.cpu_ns() for session in sessions]
        for i in range(n):
            for subject, session in both if i % 2 == 0 else both[::-1]:
                began = time.perf_counter()
                session.read_file("note.txt")
                subject.calls_ms.append((time.perf_counter() - began) * 1000)
        for (subject, session), before in zip(both, cpu_before, strict=True):
            subject.cpu_ns = session.cpu_ns() - before
            subject.peak_rss_kib = session.peak_rss_kib()
    finally:
        for session in sessions:
            session.close()


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def summarise(ours: Subject, bare: Subject) -> list[dict[str, Any]]:
    """One row per metric: both values, the ratio, and the verdict where a target applies."""
    median = statistics.median
    metrics: list[tuple[str, str, float, float, float | None]] = [
        ("cold start median", "ms", median(ours.starts_ms), median(bare.starts_ms),
         TARGETS["cold_start"]),
        ("cold start p90", "ms", p90(ours.starts_ms), p90(bare.starts_ms), None),
        ("per-call median", "ms", median(ours.calls_ms), median(bare.calls_ms),
         TARGETS["per_call"]),
        ("per-call p90", "ms", p90(ours.calls_ms), p90(bare.calls_ms), None),
        ("server CPU per call", "ms", ours.cpu_ns / len(ours.calls_ms) / 1e6,
         bare.cpu_ns / len(bare.calls_ms) / 1e6, None),
        ("peak RSS (VmHWM)", "MiB", ours.peak_rss_kib / 1024, bare.peak_rss_kib / 1024,
         TARGETS["peak_rss"]),
    ]  # fmt: skip
    rows = []
    for name, unit, a, b, target in metrics:
        ratio = a / b
        verdict = "" if target is None else ("PASS" if ratio <= target else "MISS")
        rows.append(
            {"metric": name, "unit": unit, "scoped_mcp": round(a, 4), "bare": round(b, 4),
             "ratio": round(ratio, 4), "target": target, "verdict": verdict}
        )  # fmt: skip
    return rows


def summarise_otel(on: Subject, off: Subject) -> list[dict[str, Any]]:
    """Tracing on against off, same server: the per-call cost of telemetry."""
    median = statistics.median
    metrics = [
        ("cold start median", "ms", median(on.starts_ms), median(off.starts_ms)),
        ("per-call median", "ms", median(on.calls_ms), median(off.calls_ms)),
        ("per-call p90", "ms", p90(on.calls_ms), p90(off.calls_ms)),
        ("server CPU per call", "ms", on.cpu_ns / len(on.calls_ms) / 1e6,
         off.cpu_ns / len(off.calls_ms) / 1e6),
        ("peak RSS (VmHWM)", "MiB", on.peak_rss_kib / 1024, off.peak_rss_kib / 1024),
    ]  # fmt: skip
    return [
        {"metric": name, "unit": unit, "otel_on": round(a, 4), "otel_off": round(b, 4),
         "ratio": round(a / b, 4), "delta": round(a - b, 4)}
        for name, unit, a, b in metrics
    ]  # fmt: skip


def render_otel(rows: list[dict[str, Any]], sink: Sink) -> str:
    head = f"{'tracing on vs off':<26}{'on':>12}{'off':>14}{'ratio':>8}{'delta':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['metric'] + ' (' + r['unit'] + ')':<26}{r['otel_on']:>12.3f}{r['otel_off']:>14.3f}"
            f"{r['ratio']:>7.3f}x{r['delta']:>+10.3f}"
        )
    lines.append(f"(OTLP sink on 127.0.0.1 received {sink.requests} exports, {sink.bytes} bytes)")
    return "\n".join(lines)


def render(rows: list[dict[str, Any]]) -> str:
    head = f"{'metric':<26}{'scoped-mcp':>12}{'bare FastMCP':>14}{'ratio':>8}{'target':>9}  result"
    lines = [head, "-" * len(head)]
    for r in rows:
        target = f"<={r['target']:.2f}x" if r["target"] else "-"
        lines.append(
            f"{r['metric'] + ' (' + r['unit'] + ')':<26}{r['scoped_mcp']:>12.3f}{r['bare']:>14.3f}"
            f"{r['ratio']:>7.3f}x{target:>9}  {r['verdict']}"
        )
    lines.append(f"{'broker hot path':<26}{'':>12}{'':>14}  (bench/broker.py measures it)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="timed calls per server (500)")
    parser.add_argument("--starts", type=int, default=15, help="cold starts per server (15)")
    parser.add_argument("--json", type=Path, help="write the numbers to this file")
    parser.add_argument(
        "--otel",
        action="store_true",
        help="also run scoped-mcp with tracing on (OTLP/HTTP to a local sink) and compare",
    )
    args = parser.parse_args(argv)
    if not 2 <= args.starts <= 200 or not 10 <= args.calls <= 20000:
        parser.error("--starts must be 2..200 and --calls 10..20000")

    began = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="scoped-mcp-bench-") as tmp,
        otlp_sink() if args.otel else contextlib.nullcontext(("", Sink())) as (endpoint, sink),
    ):
        setup = prepare(Path(tmp))
        pair: tuple[Subject, ...] = subjects(setup)
        if args.otel:
            pair = (*pair, otel_subject(pair[0], endpoint))
        bench_starts(pair, setup, args.starts)
        bench_calls(pair, setup, args.calls)
    rows = summarise(pair[0], pair[1])
    otel_rows = summarise_otel(pair[2], pair[0]) if args.otel else []
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "starts": args.starts,
        "calls": args.calls,
        "warmup_calls": WARMUP_CALLS,
        "manifest": setup.note,
        "with_sqlite": setup.with_sqlite,
        "tools": {s.label: s.tools for s in pair},
        "wall_seconds": round(time.perf_counter() - began, 1),
    }
    print(f"scoped-mcp tools: {', '.join(pair[0].tools)}")
    print(f"{setup.note}; {meta['cpus']} CPUs, Python {meta['python']}; "
          f"{args.starts} starts and {args.calls} calls per server, interleaved")  # fmt: skip
    print(render(rows))
    if otel_rows:
        print(render_otel(otel_rows, sink))
    print(f"(wall time {meta['wall_seconds']} s)")
    if args.json:
        out = {
            "meta": meta,
            "results": rows,
            "samples_ms": {s.label: {"starts": s.starts_ms, "calls": s.calls_ms} for s in pair},
            "peak_rss_kib": {s.label: s.peak_rss_kib for s in pair},
            "cpu_ns_during_calls": {s.label: s.cpu_ns for s in pair},
            "otel": {"results": otel_rows, "sink_requests": sink.requests, "sink_bytes": sink.bytes}
            if args.otel
            else None,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
