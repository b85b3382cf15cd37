"""How many copies of a credential's plaintext a live process holds, found by scanning its memory.

The secret is random and kept in this test process only XOR-masked, so every plaintext copy a
scan finds was made by the code under test. Each copy found is attributed: a live ``str`` or
``bytes`` object (and what holds it), our own call buffer, or an unreferenced copy left in freed
memory by the interpreter or a library. The numbers go to docs/threat-model.md.
"""

from __future__ import annotations

import bisect
import ctypes
import gc
import os
import secrets
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
LENGTH = 40
PREFIX = 8
CHUNK = 16 << 20


class MaskedSecret:
    """A random secret held only as ``masked`` XOR ``mask``: no plaintext copy of it exists here."""

    def __init__(self) -> None:
        self.mask = bytearray(os.urandom(LENGTH))
        self.masked = bytearray(ALPHABET[secrets.randbelow(len(ALPHABET))] ^ m for m in self.mask)
        # The scan looks for this short prefix, then checks the rest through the mask.
        self.prefix = bytes(
            a ^ b for a, b in zip(self.masked[:PREFIX], self.mask[:PREFIX], strict=True)
        )

    def plaintext(self) -> bytearray:
        """The secret in a new buffer, which the caller must wipe."""
        return bytearray(a ^ b for a, b in zip(self.masked, self.mask, strict=True))

    def write_yaml(self, path: Path, key: str) -> None:
        """Write ``key: <secret>`` to a new 0600 file; the plaintext buffer is wiped after."""
        plain = self.plaintext()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, f"{key}: ".encode())
            os.write(fd, plain)
            os.write(fd, b"\n")
        finally:
            os.close(fd)
            ctypes.memset((ctypes.c_char * LENGTH).from_buffer(plain), 0, LENGTH)


SCAN_SCRIPT = r"""
import os, sys
pid, length, prefix_len, chunk = (int(a) for a in sys.argv[1:5])
skip = {b"[vvar]", b"[vsyscall]", b"[vvar_vclock]"}
mask = bytes.fromhex(sys.stdin.buffer.readline().decode())
masked = bytes.fromhex(sys.stdin.buffer.readline().decode())
prefix = bytes(a ^ b for a, b in zip(masked[:prefix_len], mask[:prefix_len]))
buf = bytearray(chunk)
view = memoryview(buf)

def regions():
    with open(f"/proc/{pid}/maps", "rb") as maps:
        for line in maps.read().splitlines():
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split(b"-"))
            if parts[1][:1] == b"r" and (len(parts) < 6 or parts[5] not in skip):
                yield lo, hi

def whole(at, got):
    if at + length > got:
        return False
    return all(buf[at + k] ^ mask[k] == masked[k] for k in range(prefix_len, length))

def scan():
    found = set()
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        for lo, hi in regions():
            offset = lo
            while offset < hi:
                size = min(chunk, hi - offset)
                try:
                    got = os.preadv(fd, [view[:size]], offset)
                except OSError:
                    break
                at = buf.find(prefix, 0, got)
                while at != -1:
                    if whole(at, got):
                        found.add(offset + at)
                    at = buf.find(prefix, at + 1, got)
                if got < size or offset + size >= hi:
                    break
                offset += size - length
    finally:
        os.close(fd)
    return sorted(found)

for command in sys.stdin.buffer:
    try:
        sys.stdout.write(" ".join(str(a) for a in scan()) + "\n")
    except OSError as exc:
        sys.stdout.write(f"error {type(exc).__name__}\n")
    sys.stdout.flush()
"""


class Scanner:
    """A child process that scans a process's memory (ours by default) for the secret on request.

    The scan runs in another process so that this one allocates nothing while it is read: any
    allocation here could overwrite, and so hide, a stray copy in freed memory.
    """

    def __init__(self, secret: MaskedSecret, pid: int | None = None) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SCAN_SCRIPT,
                str(pid or os.getpid()),
                str(LENGTH),
                str(PREFIX),
                str(CHUNK),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(
            secret.mask.hex().encode() + b"\n" + secret.masked.hex().encode() + b"\n"
        )
        self.process.stdin.flush()
        self._in = self.process.stdin.fileno()
        self._out = self.process.stdout

    def find(self) -> list[int]:
        """Addresses at which the whole secret occurs in the scanned process."""
        os.write(self._in, b"scan\n")
        line = self._out.readline()
        assert line, "the scanner exited"
        if line.startswith(b"error"):
            raise PermissionError(f"cannot read the process's memory ({line.decode().strip()})")
        return [int(a) for a in line.split()]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


@dataclass
class Census:
    """The copies one scan found, sorted by who holds them."""

    total: int
    held: dict[str, int] = field(default_factory=dict)

    @property
    def live(self) -> int:
        return sum(self.held.values())

    @property
    def stray(self) -> int:
        """Copies no live object holds: freed memory the allocator has not reused yet."""
        return self.total - self.live


def _data_range(obj: str | bytes) -> tuple[int, int] | None:
    """Where a compact ASCII ``str`` or a ``bytes`` object keeps its characters."""
    if isinstance(obj, str) and not obj.isascii():
        return None
    length = len(obj)
    start = id(obj) + sys.getsizeof(obj) - length - 1
    return start, start + length


def census(addresses: list[int], names: dict[int, str], buffers: dict[str, bytearray]) -> Census:
    """Attribute each address to the live object whose characters it lies in, if any."""
    result = Census(len(addresses))
    claimed: set[int] = set()

    def claim(start: int, end: int, label: str) -> None:
        i = bisect.bisect_left(addresses, start)
        while i < len(addresses) and addresses[i] + LENGTH <= end:
            if addresses[i] not in claimed:
                claimed.add(addresses[i])
                result.held[label] = result.held.get(label, 0) + 1
            i += 1

    for label, buffer in buffers.items():
        if buffer:
            start = ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer))
            claim(start, start + len(buffer), label)
    for holder in gc.get_objects():
        for ref in gc.get_referents(holder):
            if type(ref) in (str, bytes) and len(ref) >= LENGTH:
                span = _data_range(ref)
                if span is not None:
                    claim(*span, names.get(id(holder), type(holder).__name__))
    return result


def table(rows: dict[str, Census]) -> str:
    return "\n".join(
        f"{stage}: {c.total} found, held {c.held}, stray {c.stray}" for stage, c in rows.items()
    )


class Sink:
    """An HTTP server on 127.0.0.1 that reads each request into one buffer it wipes, answers 204."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.buffer = bytearray(65536)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                got = 0
                while b"\r\n\r\n" not in self.buffer[:got]:
                    n = conn.recv_into(memoryview(self.buffer)[got:])
                    if not n:
                        break
                    got += n
                ctypes.memset((ctypes.c_char * len(self.buffer)).from_buffer(self.buffer), 0, got)
                conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/<pid>/mem (Linux only)"
)


@pytest.mark.anyio
async def test_plaintext_copies_in_this_process(tmp_path: Path) -> None:
    """A file secret, fetched, sealed and used through ``use()`` in this process: the preflight
    keeps no copy, the sealed cache and the wiped call buffer hold none, the only live copies are
    the redactor's, fetching leaves (almost) no stray copy, and ``bytes_view`` calls add none."""
    import httpx2

    from scoped_mcp.credentials.backends.file import FileBackend
    from scoped_mcp.credentials.broker import CredentialBroker
    from scoped_mcp.credentials.check import check_plans
    from scoped_mcp.credentials.plan import KeyPlan
    from scoped_mcp.credentials.refs import SecretRef
    from scoped_mcp.credentials.view import ModuleCredentials
    from scoped_mcp.redaction import Redactor

    secret = MaskedSecret()
    scanner = Scanner(secret)
    rows: dict[str, Census] = {}
    sink = Sink()
    redactor = Redactor()
    names: dict[int, str] = {}
    buffers: dict[str, bytearray] = {"sink": sink.buffer}

    def take(stage: str, **extra: bytearray) -> Census:
        gc.collect()
        if redactor._pattern is not None:
            names[id(redactor._forms)] = "Redactor._forms"
            names[id(redactor._pattern)] = "Redactor pattern"
        rows[stage] = census(scanner.find(), names, {**buffers, **extra})
        return rows[stage]

    try:
        assert take("baseline").total == 0, "the test itself must hold no plaintext"
        path = tmp_path / "secrets.yml"
        secret.write_yaml(path, "API_TOKEN")
        plans = {
            "m": {
                "API_TOKEN": KeyPlan(
                    "m", "API_TOKEN", SecretRef("file", str(path), "API_TOKEN"), True
                )
            }
        }
        backend = FileBackend()
        broker = CredentialBroker(
            plans=plans, backends={"file": backend}, ttl=300, redactor=redactor
        )
        view = ModuleCredentials(broker, "m", frozenset())
        assert check_plans(plans, {"file": backend})[0].usable
        preflight = take("after preflight")
        assert preflight.live == 0, "the preflight kept a plaintext copy"
        # What PyYAML leaves of a parse (its reader buffer, scalar chunks, the decoded file).
        assert preflight.stray <= 3, "reading the secrets file left more copies than YAML's own"

        async with view.use("API_TOKEN") as plain:
            buffer = plain._buffer
            inside = take("inside the first use()", call_buffer=buffer)
            assert inside.held.get("call_buffer") == 1, "the scan did not find the call buffer"
        assert not any(buffer), "the call buffer was not wiped"
        after_fetch = take("after fetch + seal")
        (entry,) = broker._cache.values()
        assert all(secret.prefix not in s.ciphertext for s in entry.fields.values())
        assert set(after_fetch.held) <= {"Redactor._forms", "Redactor pattern"}, after_fetch.held
        assert after_fetch.stray <= 1, "fetching, registering and sealing left stray copies"

        for _ in range(20):
            async with view.use("API_TOKEN") as plain:
                assert len(plain.bytes_view) == LENGTH
        after_views = take("after 20 bytes_view calls")
        assert after_views.held == after_fetch.held
        assert after_views.total <= after_fetch.total, "bytes_view calls left copies behind"

        async with httpx2.AsyncClient(trust_env=False, timeout=5) as client:
            for _ in range(20):
                async with view.use("API_TOKEN") as plain:
                    headers = {"Authorization": f"Bearer {plain.text()}"}
                    response = await client.get(f"http://127.0.0.1:{sink.port}/", headers=headers)
                    del headers
                assert response.status_code == 204
            del response
        take("after 20 text() + HTTP calls")
        await broker.close()
        take("after broker.close()")
    finally:
        sink.close()
        scanner.close()
    print("\n" + table(rows))


def test_sealer_makes_no_copy_beyond_the_call_buffer() -> None:
    """Sealing a wiped buffer and opening the result leave no plaintext anywhere in memory but
    the ``Plaintext`` buffer, and none at all once its block ends."""
    from scoped_mcp.credentials.lease import Sealer, wipe

    secret = MaskedSecret()
    scanner = Scanner(secret)
    sealer = Sealer()
    source = secret.plaintext()
    sealed = sealer.seal(source, context=b"ctx")
    wipe(source)
    assert scanner.find() == [], "sealing left a plaintext copy"
    with sealer.open(sealed, context=b"ctx") as plain:
        found = scanner.find()
        start = ctypes.addressof((ctypes.c_char * LENGTH).from_buffer(plain._buffer))
    assert found == [start], "opening made a copy besides the call buffer"
    gc.collect()
    assert scanner.find() == [], "the call buffer was not wiped"
    scanner.close()
