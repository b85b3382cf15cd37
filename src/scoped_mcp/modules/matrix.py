"""matrix module: ``matrix_send`` posts a text message to a room on the operator's allowlist.

* Rooms: the agent names a room exactly as the allowlist does (a room id ``!x:server`` or an
  alias ``#x:server``); the ``rooms`` strategy checks it before the body runs. An alias is
  resolved once through the client-server API (``GET /_matrix/client/v3/directory/room/{alias}``)
  and the room id cached for the life of the process, so a later change of the alias does not
  move the agent to another room.
* Unencrypted rooms only: before each send the room's ``m.room.encryption`` state is read, and an
  encrypted room is refused (this module has no end-to-end encryption, and a plaintext message in
  an encrypted room would be shown as unverified).
* Retries do not double-post: each message is sent with
  ``PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}``. With an
  ``idempotency_key`` the transaction id is derived from (agent, room, key), so a repeated call is
  the same transaction and the homeserver returns the first event instead of posting again;
  without one it is random.
* ``MATRIX_HOMESERVER`` and ``MATRIX_ACCESS_TOKEN`` are attached by ``CredentialAuth`` in the
  request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal
from urllib.parse import quote

import anyio
from pydantic import Field, field_validator

from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import BackendError, InvalidArgument
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import tool
from scoped_mcp.modules._http_module import HttpModule
from scoped_mcp.modules._notify import check_text
from scoped_mcp.net.client import HttpConfig, Response, safe_code
from scoped_mcp.scoping import Allowlist, Scoped, ScopeStrategy

API: Final = "/_matrix/client/v3"
ROOM_ID: Final = re.compile(r"![^\s:]{1,200}:[A-Za-z0-9.:\[\]-]{1,255}")
ALIAS: Final = re.compile(r"#[^\s:]{1,200}:[A-Za-z0-9.:\[\]-]{1,255}")
EVENT_ID: Final = re.compile(r"\$[A-Za-z0-9+/_-]{1,255}(?::[A-Za-z0-9.-]{1,255}(?::[0-9]{1,5})?)?")
ERRCODES: Final = frozenset(
    {
        "M_FORBIDDEN", "M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_USER_LOCKED", "M_BAD_JSON",
        "M_NOT_JSON", "M_NOT_FOUND", "M_LIMIT_EXCEEDED", "M_UNRECOGNIZED", "M_UNKNOWN",
        "M_UNAUTHORIZED", "M_USER_DEACTIVATED", "M_INVALID_PARAM", "M_TOO_LARGE", "M_EXCLUSIVE",
        "M_RESOURCE_LIMIT_EXCEEDED", "M_GUEST_ACCESS_FORBIDDEN", "M_BAD_STATE",
        "M_UNSUPPORTED_ROOM_VERSION", "M_MISSING_PARAM",
    }
)  # fmt: skip
"""Error codes from the Matrix spec; only these are ever repeated to the agent."""
IDEMPOTENCY_KEY: Final = re.compile(r"[A-Za-z0-9._~-]{1,128}")
MAX_EVENT_BYTES: Final = 60_000
"""Matrix caps a whole event at 65,536 bytes; this leaves room for the envelope."""


class MatrixConfig(HttpConfig):
    """``modules.matrix.config``."""

    rooms: list[str] = Field(
        min_length=1, description="Room ids (!id:server) and aliases (#alias:server) allowed."
    )
    msgtype: Literal["m.notice", "m.text"] = Field(
        default="m.notice", description="m.notice (the convention for bots) or m.text."
    )
    max_message_bytes: int = Field(
        default=16_384, gt=0, le=MAX_EVENT_BYTES, description="Largest message body (UTF-8)."
    )

    @field_validator("rooms")
    @classmethod
    def _room_names(cls, value: list[str]) -> list[str]:
        for room in value:
            if not (ROOM_ID.fullmatch(room) or ALIAS.fullmatch(room)):
                raise ValueError(f"{room!r} is neither a room id (!id:server) nor an alias")
        return value


def transaction_id(agent_id: str, room_id: str, idempotency_key: str | None) -> str:
    """A transaction id: derived from the key when one is given, random otherwise."""
    if idempotency_key is None:
        return "smcp." + secrets.token_hex(16)
    material = f"{agent_id}\x00{room_id}\x00{idempotency_key}".encode()
    return "smcp." + hashlib.sha256(material).hexdigest()[:40]


class MatrixModule(HttpModule):
    """Post messages to the Matrix rooms the operator allows."""

    name = "matrix"
    required_credentials = ("MATRIX_HOMESERVER", "MATRIX_ACCESS_TOKEN")
    config_model = MatrixConfig
    config: MatrixConfig
    service = "matrix"
    url_key = "MATRIX_HOMESERVER"
    token_key = "MATRIX_ACCESS_TOKEN"  # noqa: S105 - the credential's name, not its value

    def __init__(
        self, agent_ctx: AgentContext, credentials: CredentialView, config: MatrixConfig
    ) -> None:
        super().__init__(agent_ctx, credentials, config)
        self._room_ids: dict[str, str] = {}
        self._resolving = anyio.Lock()

    def scope_strategies(self) -> Mapping[str, ScopeStrategy]:
        """``rooms``: exactly the room ids and aliases the manifest lists."""
        return {"rooms": Allowlist(self.config.rooms, what="room")}

    @tool(mode="write")
    async def send(
        self,
        room: Annotated[
            str,
            Scoped("rooms"),
            Field(
                description="An allowed room, exactly as the operator listed it: a room id "
                '("!abc123:example.org") or an alias ("#ops:example.org").'
            ),
        ],
        message: Annotated[
            str,
            Field(
                description="The text to post; newlines allowed; at most max_message_bytes "
                "(16,384 bytes UTF-8 unless the operator set another)."
            ),
        ],
        idempotency_key: Annotated[
            str | None,
            Field(
                description="Makes a retry safe: the same key for the same room never posts "
                'twice. 1-128 of A-Z a-z 0-9 . _ ~ -, e.g. "deploy-42-done".'
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Post a text message to an allowed Matrix room (room id or alias, as configured).

        Pass an idempotency_key (letters, digits, . _ ~ -) to make a retry safe: the same key
        for the same room never posts twice. Only unencrypted rooms are supported.
        """
        check_text(message, "message", max_bytes=self.config.max_message_bytes)
        if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise InvalidArgument("idempotency_key must be 1-128 of A-Z a-z 0-9 . _ ~ -")
        room_id = await self._room_id(room)
        await self._refuse_encrypted(room_id)
        txn = transaction_id(self.agent_ctx.agent_id, room_id, idempotency_key)
        path = f"{API}/rooms/{_seg(room_id)}/send/m.room.message/{_seg(txn)}"
        content = {"msgtype": self.config.msgtype, "body": message}
        answer = await self._http.call("PUT", path, content)
        self._check(answer)
        body = answer.json()
        event_id = safe_code(body.get("event_id"), EVENT_ID) if isinstance(body, dict) else None
        if event_id is None:
            raise BackendError("matrix: the homeserver's answer has no valid event_id")
        return {"room": room, "event_id": event_id}

    async def _room_id(self, room: str) -> str:
        """The room id for an allowed room id or alias (aliases resolved once, then cached)."""
        if ROOM_ID.fullmatch(room):
            return room
        async with self._resolving:
            if room not in self._room_ids:
                answer = await self._http.call("GET", f"{API}/directory/room/{_seg(room)}")
                self._check(answer)
                body = answer.json()
                found = body.get("room_id") if isinstance(body, dict) else None
                room_id = safe_code(found, ROOM_ID)
                if room_id is None:
                    raise BackendError("matrix: the alias did not resolve to a valid room id")
                self._room_ids[room] = room_id
            return self._room_ids[room]

    async def _refuse_encrypted(self, room_id: str) -> None:
        answer = await self._http.call(
            "GET", f"{API}/rooms/{_seg(room_id)}/state/m.room.encryption/"
        )
        if answer.status == 404 and _errcode(answer) in ("M_NOT_FOUND", None):
            return
        self._check(answer)
        raise InvalidArgument(
            "the room is end-to-end encrypted; matrix_send posts only to unencrypted rooms"
        )

    def _check(self, answer: Response) -> None:
        if not answer.ok:
            raise self._http.error(answer, code=_errcode(answer))


def _seg(value: str) -> str:
    """``value`` as one percent-encoded path segment."""
    return quote(value, safe="")


def _errcode(answer: Response) -> str | None:
    body = answer.json()
    code = body.get("errcode") if isinstance(body, dict) else None
    return code if isinstance(code, str) and code in ERRCODES else None
