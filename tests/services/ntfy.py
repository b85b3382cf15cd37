"""The part of the ntfy publish API the ntfy module uses: JSON publish to the server root."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.services.fake_http import Recorded, Reply

TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")


@dataclass
class NtfyService:
    """Accepts ``POST /`` with a JSON message; checks the bearer token when one is set."""

    token: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: Recorded) -> Reply:
        if self.token and request.header("authorization") != f"Bearer {self.token}":
            return Reply(401, {"code": 40101, "http": 401, "error": "unauthorized"})
        if request.method not in ("POST", "PUT") or request.path != "/":
            return Reply(404, {"code": 40401, "http": 404, "error": "page not found"})
        data = request.json()
        if not TOPIC.fullmatch(data.get("topic", "")):
            return Reply(400, {"code": 40009, "http": 400, "error": "invalid topic"})
        if len(data.get("title", "").encode()) > 1024:
            return Reply(400, {"code": 40038, "http": 400, "error": "title too long"})
        self.messages.append(data)
        answer = {"id": f"msg{len(self.messages):04d}", "event": "message", **data}
        return Reply(200, answer)
