"""The first program in the sandbox: set resource limits, start the network bridge, exec.

Run as ``python -I -S launcher.py [--limit NAME=N]... [--bridge PORT:SOCKET] -- CMD ARGS...``
with the standard library only (nothing from scoped-mcp is importable inside the sandbox). The
upstream replaces this process (``execv``), so it keeps its pid and the environment it was given.
The bridge is a forked helper that accepts on ``127.0.0.1:PORT`` inside the sandbox's own network
namespace and relays each connection to scoped-mcp's filtering proxy on the unix socket; it dies
with the sandbox's PID namespace.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import sys
import threading

LIMITS = {
    "memory": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU,
    "files": resource.RLIMIT_NOFILE,
    "processes": resource.RLIMIT_NPROC,
}
MAX_BRIDGED = 64


def _relay(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (sink, source):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _bridge(listener: socket.socket, target: str) -> None:
    slots = threading.BoundedSemaphore(MAX_BRIDGED)

    def one(client: socket.socket) -> None:
        with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
            try:
                upstream.connect(target)
            except OSError:
                return
            back = threading.Thread(target=_relay, args=(upstream, client), daemon=True)
            back.start()
            _relay(client, upstream)
            back.join()
        slots.release()

    while True:
        client, _ = listener.accept()
        if not slots.acquire(blocking=False):
            client.close()
            continue
        threading.Thread(target=one, args=(client,), daemon=True).start()


def main(argv: list[str]) -> None:
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    bridge: tuple[int, str] | None = None
    limits: list[tuple[int, int]] = []
    for flag, value in zip(options[::2], options[1::2], strict=True):
        if flag == "--limit":
            name, count = value.split("=", 1)
            limits.append((LIMITS[name], int(count)))
        elif flag == "--bridge":
            port, path = value.split(":", 1)
            bridge = (int(port), path)
    if bridge is not None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", bridge[0]))
        listener.listen(MAX_BRIDGED)
        if os.fork() == 0:
            # The bridge must not hold the MCP pipes open after the upstream exits.
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            _bridge(listener, bridge[1])
            os._exit(0)
        listener.close()
    for kind, number in limits:
        resource.setrlimit(kind, (number, number))
    os.execv(command[0], command)  # noqa: S606 - the upstream, as the manifest names it


if __name__ == "__main__":
    main(sys.argv[1:])
