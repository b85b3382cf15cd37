"""Benchmark: cold start and a fleet of 8 with and without the zygote, against bare FastMCP.

    python bench/zygote.py [--starts N] [--rounds N] [--fleet N] [--json out.json]

Three subjects, run interleaved (A B C, B C A, C A B, ...) so machine noise falls on all alike:
``scoped-mcp`` through a zygote started on a temporary ``XDG_RUNTIME_DIR``, ``scoped-mcp`` with
``SCOPED_MCP_ZYGOTE=off`` (today's start) and ``bench/bare_server.py``. Each serves the same
temporary copy of the research manifest as ``bench/run.py`` uses.

- cold start: spawn to the ``tools/list`` answer, one server at a time;
- fleet: ``--fleet`` servers spawned at once, time until the last one answered ``tools/list``,
  and the summed PSS (``/proc/<pid>/smaps_rollup``) of every process that serves them at that
  moment: launchers and forked children, plus the zygote itself, for the zygote subject.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import run
from run import PROTOCOL_VERSION, ServerFailed, Session, Setup, prepare, start, subjects
from run import Subject as RunSubject

READY_SECONDS = 120.0


@dataclass
class Subject:
    """One way of starting a server and what was measured about it."""

    label: str
    run: RunSubject
    starts_ms: list[float] = field(default_factory=list)
    fleet_ms: list[float] = field(default_factory=list)
    fleet_pss_kib: list[int] = field(default_factory=list)
    fallbacks: int = 0  # zygote subject only: servers that did not run as the zygote's children


def pss_kib(pid: int) -> int:
    """The proportional set size of one process (shared pages split among their users)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise ServerFailed(f"no Pss in /proc/{pid}/smaps_rollup")


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def start_zygote(setup: Setup, runtime: Path) -> subprocess.Popen[bytes]:
    """``scoped-mcp zygote`` on ``runtime``; returns once it listens."""
    runtime.mkdir(mode=0o700)
    log = setup.root / "zygote.log"
    script = Path(sys.executable).with_name("scoped-mcp")
    env = {**setup.env, "XDG_RUNTIME_DIR": str(runtime)}
    with log.open("wb") as out:
        zygote = subprocess.Popen(
            [sys.executable, str(script), "zygote"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + READY_SECONDS
    while b"listening" not in log.read_bytes():
        if zygote.poll() is not None or time.monotonic() > deadline:
            raise ServerFailed(f"the zygote did not start: {log.read_text()}")
        time.sleep(0.05)
    return zygote


def fleet(subject: Subject, setup: Setup, size: int, zygote: int | None) -> None:
    """Spawn ``size`` servers at once; record when the last answered and their summed PSS."""
    env = {**setup.env, **(subject.run.env or {})}
    stderr = setup.root / "stderr.log"
    began = time.perf_counter()
    # each member is its own agent: one audit file has one writer, so a shared AGENT_ID would
    # refuse all but the first (the audit lock), as it would for a real fleet
    sessions = [
        Session(subject.run.argv, {**env, "AGENT_ID": f"fleet-{i:02d}"}, setup.root, stderr)
        for i in range(size)
    ]
    try:
        initialize = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "scoped-mcp-bench", "version": "0"},
        }
        for session in sessions:
            session.request("initialize", initialize)
        for session in sessions:
            session.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            session.request("tools/list", {})
        subject.fleet_ms.append((time.perf_counter() - began) * 1000)
        pids = [session.proc.pid for session in sessions]
        if zygote is not None:
            forked = children(zygote)
            subject.fallbacks += size - len(forked)
            pids += [zygote, *forked]
        subject.fleet_pss_kib.append(sum(pss_kib(pid) for pid in pids))
    finally:
        for session in sessions:
            session.close()


def rotations(items: list[Subject], n: int) -> list[list[Subject]]:
    """``n`` orders of ``items``, each rotated by one: none always goes first."""
    return [items[i % len(items) :] + items[: i % len(items)] for i in range(n)]


def run_all(setup: Setup, args: argparse.Namespace) -> list[Subject]:
    ours, bare = subjects(setup)
    runtime = setup.root / "run"
    zygote = start_zygote(setup, runtime)
    try:
        via = Subject(
            "scoped-mcp + zygote",
            RunSubject("zygote", ours.argv, {"XDG_RUNTIME_DIR": str(runtime)}),
        )
        here = Subject(
            "scoped-mcp in-process", RunSubject("off", ours.argv, {"SCOPED_MCP_ZYGOTE": "off"})
        )
        plain = Subject("bare FastMCP", bare)
        every = [via, here, plain]
        for subject in every:  # one unmeasured start each: bytecode and page caches warm
            start(subject.run, setup)[0].close()
        if children(zygote.pid):
            raise ServerFailed("a zygote child outlived its launcher")
        for order in rotations(every, args.starts):
            for subject in order:
                session, elapsed = start(subject.run, setup)
                session.close()
                subject.starts_ms.append(elapsed)
        for order in rotations(every, args.rounds):
            for subject in order:
                fleet(subject, setup, args.fleet, zygote.pid if subject is via else None)
        return every
    finally:
        zygote.terminate()
        zygote.wait(timeout=30)


def render(every: list[Subject], size: int) -> str:
    median = statistics.median
    fleet_head = f"fleet of {size}: last ready ms"
    head = f"{'':<24}{'cold start ms':>15}{fleet_head:>32}{'summed PSS MiB':>17}"
    lines = [head, "-" * len(head)]
    for s in every:
        lines.append(
            f"{s.label:<24}{median(s.starts_ms):>15.0f}{median(s.fleet_ms):>32.0f}"
            f"{median(s.fleet_pss_kib) / 1024:>17.0f}"
        )
    lines.append("(medians; the zygote row's PSS includes the zygote and the launchers)")
    if every[0].fallbacks:
        lines.append(f"WARNING: {every[0].fallbacks} zygote-row servers started in-process")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=9, help="cold starts per subject (9)")
    parser.add_argument("--rounds", type=int, default=3, help="fleets per subject (3)")
    parser.add_argument("--fleet", type=int, default=8, help="servers per fleet (8)")
    parser.add_argument("--json", type=Path, help="write the numbers to this file")
    args = parser.parse_args(argv)
    # Eight in-process starts at once on a busy 2-core machine can take longer than run.py's limit.
    run.IO_TIMEOUT = 300.0
    if not 1 <= args.starts <= 100 or not 1 <= args.rounds <= 20 or not 1 <= args.fleet <= 32:
        parser.error("--starts must be 1..100, --rounds 1..20 and --fleet 1..32")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scoped-mcp-bench-") as tmp:
        setup = prepare(Path(tmp))
        every = run_all(setup, args)
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_after": os.getloadavg(),
        "manifest": setup.note,
        "wall_seconds": round(time.perf_counter() - began, 1),
    }
    load = meta["load_average_after"][0]
    print(f"{setup.note}; {meta['cpus']} CPUs, Python {meta['python']}, load average after "
          f"{load:.1f}; {args.starts} starts, {args.rounds} fleets each")  # fmt: skip
    print(render(every, args.fleet))
    if args.json:
        samples = {
            s.label: {"starts_ms": s.starts_ms, "fleet_ms": s.fleet_ms,
                      "fleet_pss_kib": s.fleet_pss_kib}
            for s in every
        }  # fmt: skip
        args.json.write_text(json.dumps({"meta": meta, "samples": samples}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
