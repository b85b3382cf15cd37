"""Run the README's install-and-run command and talk MCP to the server it starts, as a client would.

Usage: python3 .ci/drive_readme_command.py "<command>"

Sends initialize, waits for the answer, sends initialized and tools/list, waits for the tool list,
then closes stdin and expects the server to exit 0. The install step's pip output goes to stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

TIMEOUT = 600  # the command installs the package first


def main(command: str) -> int:
    process = subprocess.Popen(
        ["bash", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None and process.stdout is not None
    answers: dict[int, dict[str, object]] = {}
    ready = threading.Condition()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            message = json.loads(line)  # anything but JSON-RPC on stdout is a failure
            with ready:
                answers[message.get("id", -1)] = message
                ready.notify_all()

    threading.Thread(target=read, daemon=True).start()

    def ask(message: dict[str, object]) -> dict[str, object]:
        process.stdin.write(json.dumps(message) + "\n")  # type: ignore[union-attr]
        process.stdin.flush()  # type: ignore[union-attr]
        deadline = time.monotonic() + TIMEOUT
        with ready:
            while message["id"] not in answers:
                if not ready.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise SystemExit(f"no answer to {message['method']}")
            return answers[message["id"]]  # type: ignore[index]

    ask({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "ci", "version": "0"}}})  # fmt: skip
    process.stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    listed = ask({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    tools = sorted(tool["name"] for tool in listed["result"]["tools"])  # type: ignore[index]
    print("tools/list answered:", ", ".join(tools))
    process.stdin.close()
    code = process.wait(timeout=30)
    if "filesystem_read_file" not in tools or code != 0:
        print(f"unexpected: exit {code}, tools {tools}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
