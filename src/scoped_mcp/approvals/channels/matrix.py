"""The Matrix channel: each request posted to one room; approvers answer there.

Posting goes through the matrix module's own client (``modules/matrix.py``: unencrypted rooms only,
a transaction id per request so a retry never posts twice). Answers are read by long-polling
``GET /_matrix/client/v3/sync`` with a filter for that room's ``m.room.message`` events: bounded
in time (``poll_seconds`` plus ``timeout_s``), in size (``max_response_bytes``) and in events
(``TIMELINE_LIMIT`` a poll). The first sync only takes the position, so messages older than the
server are never read. A message counts when its body is exactly ``approve ID`` or
``deny ID [reason]`` and its sender (authenticated by the homeserver) is listed in the request's
rule, and is not the bot's own account; every other message is ignored.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import anyio

from scoped_mcp.approvals.channels import message
from scoped_mcp.approvals.config import MATRIX_USER
from scoped_mcp.approvals.config import MatrixChannel as MatrixSpec
from scoped_mcp.approvals.errors import DecisionRefused
from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import ToolCallError
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules.matrix import MatrixConfig, MatrixModule
from scoped_mcp.net.auth import CredentialAuth
from scoped_mcp.net.client import HttpConfig, HttpService

if TYPE_CHECKING:
    from scoped_mcp.approvals.gate import ApprovalGate
    from scoped_mcp.approvals.store import Request

_log = logging.getLogger(__name__)
API: Final = "/_matrix/client/v3"
TIMELINE_LIMIT: Final = 50
ANSWER: Final = re.compile(r"(approve|deny)\s+([0-9a-f]{10})(?:\s+(.{1,300}))?", re.DOTALL)
BACKOFF: Final = (1.0, 2.0, 5.0, 10.0, 30.0)


def sync_filter(room: str) -> str:
    """The /sync filter: only this room's messages, nothing else."""
    nothing: dict[str, Any] = {"types": []}
    return json.dumps(
        {
            "presence": nothing,
            "account_data": nothing,
            "room": {
                "rooms": [room],
                "timeline": {"limit": TIMELINE_LIMIT, "types": ["m.room.message"]},
                "state": nothing,
                "ephemeral": nothing,
                "account_data": nothing,
            },
        },
        separators=(",", ":"),
    )


def answers(body: Any, room: str) -> list[tuple[str, str, str, str | None]]:
    """(sender, op, request id, reason) of every answer-shaped message in a /sync body."""
    try:
        events = body["rooms"]["join"][room]["timeline"]["events"]
    except (KeyError, TypeError):
        return []
    found = []
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict) or event.get("type") != "m.room.message":
            continue
        sender, content = event.get("sender"), event.get("content")
        text = content.get("body") if isinstance(content, dict) else None
        if not isinstance(sender, str) or not isinstance(text, str):
            continue
        match = ANSWER.fullmatch(text.strip())
        if match:
            reason = " ".join(match[3].split()) if match[3] else None
            found.append((sender, match[1], match[2], reason))
    return found


class MatrixChannel:
    """Posts requests to the room and applies the answers of listed approvers."""

    name = "matrix"

    def __init__(
        self, spec: MatrixSpec, agent_ctx: AgentContext, credentials: CredentialView
    ) -> None:
        self._spec = spec
        config = MatrixConfig(rooms=[spec.room], msgtype="m.text", timeout_s=spec.timeout_s)
        self._module = MatrixModule(agent_ctx, credentials, config)
        auth = CredentialAuth(
            credentials,
            url_key="MATRIX_HOMESERVER",
            token_key="MATRIX_ACCESS_TOKEN",  # noqa: S106 - a key name
        )
        limits = HttpConfig(
            timeout_s=spec.poll_seconds + spec.timeout_s,
            max_response_bytes=spec.max_response_bytes,
        )
        self._sync = HttpService("matrix", auth, limits)
        self._open = False
        self._own_id: str | None = None

    def __repr__(self) -> str:
        return f"MatrixChannel({self._spec.room!r})"

    async def _ensure_open(self) -> None:
        if not self._open:
            await self._module.startup()
            await self._sync.open()
            self._open = True

    async def notify(self, request: Request) -> None:
        await self._ensure_open()
        text = message(
            request.id,
            request.binding.tool,
            request.binding.agent_id,
            request.rendering,
            request.rule.lifetime,
        )
        text += f"\nor answer here: approve {request.id} / deny {request.id} REASON"
        await self._module.send(room=self._spec.room, message=text, idempotency_key=request.id)

    async def serve(self, gate: ApprovalGate) -> None:
        """Poll /sync until cancelled, applying answers; failures back off, never stop it."""
        await self._ensure_open()
        await self._learn_own_id()
        since: str | None = None
        failures = 0
        while True:
            try:
                body = await self._poll(since)
                failures = 0
            except ToolCallError as exc:
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                failures += 1
                _log.warning("matrix sync failed", extra={"error": exc.message, "retry_in": delay})
                await anyio.sleep(delay)
                continue
            next_batch = body.get("next_batch") if isinstance(body, dict) else None
            if since is not None:
                self._apply(gate, body)
            if isinstance(next_batch, str) and next_batch:
                since = next_batch
            else:
                await anyio.sleep(BACKOFF[0])

    async def _learn_own_id(self) -> None:
        """The bot's own user id (``/account/whoami``): its messages never count, even if an
        operator listed it as an approver. Unknown if the homeserver does not say."""
        try:
            answer = await self._sync.call("GET", f"{API}/account/whoami")
        except ToolCallError as exc:
            _log.warning("matrix whoami failed", extra={"error": exc.message})
            return
        body = answer.json() if answer.ok else None
        user = body.get("user_id") if isinstance(body, dict) else None
        if isinstance(user, str) and MATRIX_USER.fullmatch(user):
            self._own_id = user

    async def _poll(self, since: str | None) -> Any:
        timeout_ms = 0 if since is None else int(self._spec.poll_seconds * 1000)
        query = f"timeout={timeout_ms}&filter={quote(sync_filter(self._spec.room), safe='')}"
        if since is not None:
            query += f"&since={quote(since, safe='')}"
        answer = await self._sync.call("GET", f"{API}/sync?{query}")
        if not answer.ok:
            raise self._sync.error(answer)
        return answer.json()

    def _apply(self, gate: ApprovalGate, body: Any) -> None:
        for sender, op, request_id, reason in answers(body, self._spec.room):
            if sender == self._own_id:
                continue
            try:
                gate.decide(request_id, op, channel="matrix", approver=sender, reason=reason)
            except DecisionRefused as exc:
                _log.info("matrix answer ignored", extra={"sender": sender, "why": str(exc)})

    async def close(self) -> None:
        if self._open:
            await self._sync.close()
            await self._module.shutdown()
            self._open = False
