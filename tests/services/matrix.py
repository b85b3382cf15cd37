"""The parts of the Matrix client-server API the matrix module uses, with transaction dedup."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tests.services.fake_http import Recorded, Reply

API = "/_matrix/client/v3"
SEND = re.compile(rf"{API}/rooms/([^/]+)/send/m\.room\.message/([^/]+)")
STATE = re.compile(rf"{API}/rooms/([^/]+)/state/m\.room\.encryption/?")
ALIAS = re.compile(rf"{API}/directory/room/([^/]+)")


def _error(status: int, errcode: str, error: str) -> Reply:
    return Reply(status, {"errcode": errcode, "error": error})


@dataclass
class MatrixService:
    """A homeserver with aliases, joined rooms (some encrypted) and one valid access token.

    ``events`` holds every event actually posted; a transaction id seen before for the same
    token returns the first event id and posts nothing, as the spec requires.
    """

    token: str
    aliases: dict[str, str] = field(default_factory=dict)
    joined: set[str] = field(default_factory=set)
    encrypted: set[str] = field(default_factory=set)
    events: list[dict[str, Any]] = field(default_factory=list)
    transactions: dict[tuple[str, str], str] = field(default_factory=dict)

    def __call__(self, request: Recorded) -> Reply:
        if request.header("authorization") != f"Bearer {self.token}":
            return _error(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.")
        # Match on the raw path and decode each segment, as a homeserver does.
        path = request.raw_path
        if request.method == "GET" and (match := ALIAS.fullmatch(path)):
            room_id = self.aliases.get(unquote(match[1]))
            if room_id is None:
                return _error(404, "M_NOT_FOUND", "Room alias not found")
            return Reply(200, {"room_id": room_id, "servers": ["test"]})
        if request.method == "GET" and (match := STATE.fullmatch(path)):
            room_id = unquote(match[1])
            if room_id not in self.joined:
                return _error(403, "M_FORBIDDEN", "You are not in this room")
            if room_id in self.encrypted:
                return Reply(200, {"algorithm": "m.megolm.v1.aes-sha2"})
            return _error(404, "M_NOT_FOUND", "Event not found")
        if request.method == "PUT" and (match := SEND.fullmatch(path)):
            return self._send(unquote(match[1]), unquote(match[2]), request.json())
        return _error(404, "M_UNRECOGNIZED", "Unrecognized request")

    def _send(self, room_id: str, txn: str, content: dict[str, Any]) -> Reply:
        if room_id not in self.joined:
            return _error(403, "M_FORBIDDEN", "You are not in this room")
        key = (self.token, txn)
        if key not in self.transactions:
            event_id = "$" + hashlib.sha256(f"{room_id}{txn}".encode()).hexdigest()[:43]
            self.transactions[key] = event_id
            self.events.append({"room_id": room_id, "txn": txn, "content": content})
        return Reply(200, {"event_id": self.transactions[key]})
