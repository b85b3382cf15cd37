"""The ntfy and Matrix channels through the real server over stdio.

Matrix is a real Synapse on 127.0.0.1 (tests/approvals/synapse.py): the request is posted to the
room by the bot, an answer from a listed approver decides it, one from another member is ignored.
ntfy has no installable server; its stateful fake records every request.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from tests.approvals.support import (
    AGENT_ID,
    AGENT_TYPE,
    cli,
    events,
    filesystem_manifest,
    server_env,
    wait_for_request,
)
from tests.approvals.synapse import Synapse
from tests.services.checks import assert_clean
from tests.services.fake_http import serve_http
from tests.services.ntfy import NtfyService
from tests.support import running_server

pytestmark = [pytest.mark.anyio, pytest.mark.stdio]
WRITE = "filesystem_write_file"
NTFY_TOKEN = "tk_approvalsntfysecret_0123456789"
URL_SECRET = "APPROVALSQUERYSECRET42"


def _bot_request_text(synapse: Synapse, request_id: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in synapse.messages():
            body = event.get("content", {}).get("body", "")
            if event["sender"] == synapse.user_id("bot") and request_id in body:
                return str(body)
        time.sleep(0.3)
    raise AssertionError(f"the bot did not post request {request_id}")


async def test_matrix_approval_from_a_listed_sender_only(synapse: Synapse, tmp_path: Path) -> None:
    """Posted to the room; mallory's and the bot's "approve" are ignored; alice's runs the call."""
    approvals = {
        "wait": 60,
        "lifetime": 120,
        "channels": {"matrix": {"room": synapse.room, "poll_seconds": 1}},
        # The bot listed too, as an operator might by mistake: its own messages never count.
        "approvers": {"cli": False, "matrix": [synapse.user_id("alice"), synapse.user_id("bot")]},
        "rules": [{"tools": [WRITE]}],
    }
    manifest, root = filesystem_manifest(tmp_path, approvals)
    env = server_env(
        tmp_path, MATRIX_HOMESERVER=synapse.url, MATRIX_ACCESS_TOKEN=synapse.tokens["bot"]
    )
    seen: dict[str, Any] = {}

    def operate() -> None:
        request = wait_for_request(tmp_path, WRITE)
        seen["request"] = request
        seen["posted"] = _bot_request_text(synapse, request["id"])
        synapse.say("mallory", f"approve {request['id']}")
        synapse.say("bot", f"approve {request['id']}")
        # The CLI may not decide this rule (approvers.cli is false).
        refused = cli(tmp_path, "approve", request["id"])
        seen["cli"] = (refused.returncode, refused.stderr)
        time.sleep(3)  # several /sync polls: those answers have been read and ignored
        seen["after_mallory"] = wait_for_request(tmp_path, WRITE)["state"]
        synapse.say("alice", f"approve {request['id']}")

    async with running_server(
        manifest, agent_id=AGENT_ID, agent_type=AGENT_TYPE, extra_env=env, home=tmp_path / "home"
    ) as server:
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, operate)
            await server.call(WRITE, {"path": "m.txt", "content": "by matrix"})
        records = server.audit_records()
        stderr = server.stderr()
    assert (root / "m.txt").read_text() == "by matrix"
    assert seen["after_mallory"] == "pending"
    assert seen["cli"][0] == 1
    assert "cannot be decided by" in seen["cli"][1]
    request_id = seen["request"]["id"]
    assert f"approve {request_id}" in seen["posted"]
    assert "filesystem_write_file" in seen["posted"]
    (approved,) = events(records, "approved")
    assert approved["channel"] == "matrix"
    assert approved["approver"] == synapse.user_id("alice")
    assert events(records, "denied") == []
    (requested,) = events(records, "approval_requested")
    assert requested["channels"] == ["cli", "matrix"]
    bot_token = synapse.tokens["bot"]
    for where in (seen["posted"], stderr, str(records)):
        assert_clean(where, [bot_token])


async def test_ntfy_gets_one_notification_per_request(tmp_path: Path) -> None:
    """Each new request is one ntfy message with its id and the command; no credential in it."""
    service = NtfyService(token=NTFY_TOKEN)
    with serve_http(service) as ntfy:
        approvals = {
            "wait": 0.5,
            "lifetime": 60,
            "channels": {"ntfy": {"topic": "approvals-{agent_id}"}},
            "rules": [{"mode": "write"}],
        }
        manifest, _root = filesystem_manifest(tmp_path, approvals)
        env = server_env(tmp_path, NTFY_URL=f"{ntfy.url}/?auth={URL_SECRET}", NTFY_TOKEN=NTFY_TOKEN)
        async with running_server(
            manifest,
            agent_id=AGENT_ID,
            agent_type=AGENT_TYPE,
            extra_env=env,
            home=tmp_path / "home",
        ) as server:
            args = {"path": "n.txt", "content": "notify me"}
            first = await server.error(WRITE, args)
            repeat = await server.error(WRITE, args)
            # Arguments carrying a released secret (the token, sent with the first message)
            # reach the approvers scrubbed: in the notification and in the CLI's view.
            leaky = await server.error(WRITE, {"path": "l.txt", "content": f"x {NTFY_TOKEN} y"})
            leaky_id = leaky.split("pending approval ", 1)[1].split(";", 1)[0]
            shown = cli(tmp_path, "show", leaky_id)
            records = server.audit_records()
            stderr = server.stderr()
    request_id = first.split("pending approval ", 1)[1].split(";", 1)[0]
    assert request_id in repeat
    # The repeat waited on the same request: one message for it, one for the leaky call.
    message, scrubbed = service.messages
    assert leaky_id in scrubbed["message"]
    assert '"content": "x [REDACTED] y"' in scrubbed["message"]
    assert shown.returncode == 0, shown.stderr
    assert leaky_id in shown.stdout
    for where in (scrubbed["message"], scrubbed["title"], shown.stdout, leaky):
        assert_clean(where, [NTFY_TOKEN])
    assert message["topic"] == f"approvals-{AGENT_ID}"
    assert message["title"] == f"Approval {request_id}: {WRITE}"
    assert f"scoped-mcp approvals approve {request_id}" in message["message"]
    assert '"content": "notify me"' in message["message"]
    assert message["priority"] == 4
    requested, _second = events(records, "approval_requested")
    assert requested["channels"] == ["cli", "ntfy"]
    assert requested["failed"] == []
    recorded = " ".join(f"{r.target} {r.headers} {r.body!r}" for r in ntfy.requests)
    assert f"Bearer {NTFY_TOKEN}" in recorded  # the token reached ntfy itself, as a header
    for where in (str(message), first, repeat, stderr, str(records)):
        assert_clean(where, [NTFY_TOKEN, URL_SECRET])


def test_a_password_that_starts_with_a_dash_registers_and_logs_in(synapse: Synapse) -> None:
    """The fixture itself (here, so that it shares this file's Synapse under --dist loadfile)."""
    # secrets.token_urlsafe() starts with "-" once in 64 draws; passed as "-p <value>" argparse
    # took it for an option and the whole session's Synapse failed to start (CI, stop 21).
    name = "dash" + secrets.token_hex(4)
    synapse.register(name, "-" + secrets.token_urlsafe(12))
    with synapse.client(name) as member:
        whoami = member.get("/_matrix/client/v3/account/whoami")
    assert whoami.status_code == 200, whoami.text
    assert whoami.json()["user_id"] == synapse.user_id(name)
