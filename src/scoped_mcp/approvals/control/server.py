"""The control socket of one server: list, show, approve and deny for the server's own user.

Bound 0600 in the private directory (``paths.py``), removed when serving ends. Each connection:
SO_PEERCRED first (another uid gets a refusal and a ``control_refused`` record, nothing else),
then one request line of at most ``MAX_LINE`` bytes within ``READ_SECONDS``, one answer line.
At most ``MAX_CONNECTIONS`` are served at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from scoped_mcp.approvals.control import paths, peer, protocol
from scoped_mcp.approvals.errors import DecisionRefused
from scoped_mcp.audit import records
from scoped_mcp.errors import AuditUnavailable

if TYPE_CHECKING:
    from scoped_mcp.approvals.gate import ApprovalGate

_log = logging.getLogger(__name__)
READ_SECONDS = 5.0
MAX_CONNECTIONS = 8


class ControlServer:
    """Serves one gate's requests on its socket."""

    def __init__(self, gate: ApprovalGate, *, environ: dict[str, str] | None = None) -> None:
        self._gate = gate
        directory = paths.socket_dir(dict(os.environ) if environ is None else environ, create=True)
        self.path = paths.socket_path(directory, gate.agent_id)
        self._limiter = anyio.CapacityLimiter(MAX_CONNECTIONS)

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; the socket file is removed at the end."""
        self.path.unlink(missing_ok=True)
        old = os.umask(0o177)
        try:
            listener = await anyio.create_unix_listener(self.path, mode=0o600)
        finally:
            os.umask(old)
        _log.info("approvals control socket", extra={"path": str(self.path)})
        try:
            async with listener:
                task_status.started()
                await listener.serve(self._connection)
        finally:
            self.path.unlink(missing_ok=True)

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        async with stream, self._limiter:
            raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)  # noqa: S610 - anyio, not Django
            refused = peer.refusal(raw)
            if refused is not None:
                self._audit_refusal(raw, refused)
                await _send(stream, {"ok": False, "error": "refused: not the server's user"})
                return
            try:
                with anyio.fail_after(READ_SECONDS):
                    line = await BufferedByteReceiveStream(stream).receive_until(
                        b"\n", protocol.MAX_LINE
                    )
                answer = self.answer(protocol.decode(line), peer.peer_uid(raw))
            except TimeoutError:
                answer = {"ok": False, "error": "no request within the time limit"}
            except (anyio.DelimiterNotFound, anyio.IncompleteRead):
                answer = {"ok": False, "error": f"request line missing or over {protocol.MAX_LINE}"}
            except protocol.ProtocolError as exc:
                answer = {"ok": False, "error": str(exc)}
            await _send(stream, answer)

    def _audit_refusal(self, raw: Any, reason: str) -> None:
        try:
            uid: int | None = peer.peer_uid(raw)
        except OSError:
            uid = None
        _log.warning("approvals control connection refused", extra={"reason": reason})
        with contextlib.suppress(AuditUnavailable):
            self._gate.audit.write(records.control_refused(peer_uid=uid, reason=reason))

    def answer(self, message: dict[str, Any], uid: int) -> dict[str, Any]:
        """The answer to one request from the server's own user ``uid``."""
        gate = self._gate
        gate.expire_due()
        now = gate.store.now()
        server = {"agent_id": gate.agent_id, "agent_type": gate.agent_type, "pid": os.getpid()}
        op = message.get("op")
        if op == "list":
            shown = [r.summary(now) for r in gate.store if r.state in ("pending", "approved")]
            return {"ok": True, "server": server, "requests": shown}
        if op not in ("show", "approve", "deny"):
            return {"ok": False, "error": "op must be list, show, approve or deny"}
        request_id = protocol.request_id(message)
        if op == "show":
            request = gate.store.get(request_id)
            if request is None:
                return {"ok": False, "error": f"no request {request_id} on this server"}
            return {"ok": True, "server": server, "request": request.summary(now)}
        from scoped_mcp.approvals.gate import user_name

        try:
            decided = gate.decide(
                request_id,
                op,
                channel="cli",
                approver=user_name(uid),
                reason=protocol.reason(message),
            )
        except DecisionRefused as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "server": server, "request": decided.summary(now)}


async def _send(stream: anyio.abc.SocketStream, message: dict[str, Any]) -> None:
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        await stream.send(protocol.encode(message))
