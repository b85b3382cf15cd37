"""ntfy module: push notifications to the one topic the manifest gives this agent.

The topic is the manifest's template (``research-{agent_id}``) expanded once with the agent's
identity; the tool has no topic parameter, so the agent cannot reach another topic. Priority is
capped at ``max_priority``, and title, message, tags and click action are held to ntfy's documented
limits (message 4,096 bytes, title 1 KB, all tags 512 bytes) before anything is sent. The server
URL (``NTFY_URL``, which may carry credentials) and the optional bearer token (``NTFY_TOKEN``) are
attached by ``CredentialAuth`` inside the request and never seen by this code.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import BeforeValidator, Field, field_validator

from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import InvalidArgument, ManifestError
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import tool
from scoped_mcp.modules._http_module import HttpModule
from scoped_mcp.modules._notify import check_text, check_web_url
from scoped_mcp.net.client import HttpConfig, safe_code

PriorityName = Literal["min", "low", "default", "high", "urgent", "max"]
PRIORITIES: Final = {"min": 1, "low": 2, "default": 3, "high": 4, "urgent": 5, "max": 5}
NAMES: Final = {1: "min", 2: "low", 3: "default", 4: "high", 5: "urgent"}
MAX_MESSAGE_BYTES: Final = 4096
MAX_TITLE_BYTES: Final = 1024
MAX_TAGS_BYTES: Final = 512
MAX_TAGS: Final = 20
TOPIC: Final = re.compile(r"[-_A-Za-z0-9]{1,64}")
_TOPIC_TEMPLATE: Final = re.compile(r"(?:[-_A-Za-z0-9]|\{agent_id\}|\{agent_type\})+")
_MESSAGE_ID: Final = re.compile(r"[A-Za-z0-9]{1,32}")


def _priority_number(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in PRIORITIES:
        return PRIORITIES[value.lower()]
    return value


PriorityLevel = Annotated[int, BeforeValidator(_priority_number), Field(ge=1, le=5)]


class NtfyConfig(HttpConfig):
    """``modules.ntfy.config``."""

    topic: str = Field(
        description="Topic template; {agent_id} and {agent_type} expand. Must contain {agent_id}."
    )
    max_priority: PriorityLevel = Field(
        default=3,
        description="Highest priority the agent may use: min, low, default, high, urgent (or 1-5). "
        "Higher requests are lowered to it.",
    )
    markdown: bool = Field(default=False, description="Render messages as Markdown.")

    @field_validator("topic")
    @classmethod
    def _topic_template(cls, value: str) -> str:
        if "{agent_id}" not in value:
            raise ValueError("must contain {agent_id}, so each agent has its own topic")
        if not _TOPIC_TEMPLATE.fullmatch(value):
            raise ValueError(
                "may contain only letters, digits, '-', '_' and {agent_id} / {agent_type}"
            )
        return value


def expand_topic(template: str, agent_ctx: AgentContext) -> str:
    """The agent's topic; ``ManifestError`` if it breaks ntfy's topic rules once expanded."""
    topic = agent_ctx.expand(template)
    if not TOPIC.fullmatch(topic):
        raise ManifestError(
            f"modules.ntfy.config.topic: {template!r} gives a topic longer than 64 characters "
            f"for agent {agent_ctx.agent_id!r}",
            fix="shorten the template; ntfy topics are at most 64 characters",
        )
    return topic


def _check_tags(tags: list[str] | None) -> list[str]:
    if not tags:
        return []
    if len(tags) > MAX_TAGS:
        raise InvalidArgument(f"at most {MAX_TAGS} tags")
    for tag in tags:
        check_text(tag, "a tag", max_chars=64, multiline=False)
        if "," in tag:
            raise InvalidArgument("a tag must not contain ','")
    if len(",".join(tags).encode("utf-8")) > MAX_TAGS_BYTES:
        raise InvalidArgument(f"the tags together are larger than {MAX_TAGS_BYTES} bytes")
    return tags


class NtfyModule(HttpModule):
    """Send push notifications to this agent's own ntfy topic."""

    name = "ntfy"
    required_credentials = ("NTFY_URL",)
    optional_credentials = ("NTFY_TOKEN",)
    config_model = NtfyConfig
    config: NtfyConfig
    service = "ntfy"
    url_key = "NTFY_URL"
    token_key = "NTFY_TOKEN"  # noqa: S105 - the credential's name, not its value
    token_optional = True

    def __init__(
        self, agent_ctx: AgentContext, credentials: CredentialView, config: NtfyConfig
    ) -> None:
        super().__init__(agent_ctx, credentials, config)
        self._topic = expand_topic(config.topic, agent_ctx)

    @tool(mode="write")
    async def send(
        self,
        message: Annotated[
            str,
            Field(
                description=f"The notification text, at most {MAX_MESSAGE_BYTES:,} bytes "
                "(UTF-8); newlines allowed."
            ),
        ],
        title: Annotated[
            str | None,
            Field(description=f"One-line title, at most {MAX_TITLE_BYTES:,} bytes (UTF-8)."),
        ] = None,
        priority: Annotated[
            PriorityName | Annotated[int, Field(ge=1, le=5)],
            Field(
                description="min, low, default, high or urgent (or 1-5); lowered to the "
                "highest the operator allows."
            ),
        ] = "default",
        tags: Annotated[
            list[str] | None,
            Field(
                description='ntfy tags or emoji short codes, e.g. ["warning", "disk"]: at most '
                f"{MAX_TAGS}, each one line of at most 64 characters without ',', "
                f"{MAX_TAGS_BYTES} bytes together."
            ),
        ] = None,
        click: Annotated[
            str | None,
            Field(
                description="http(s) URL opened when the notification is tapped, e.g. "
                '"https://grafana.example.org/d/abc".'
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Send a push notification to your ntfy topic.

        priority is min, low, default, high, urgent (or 1-5); it is lowered to the highest the
        operator allows. tags are ntfy tags or emoji short codes; click is an http(s) URL opened
        when the notification is tapped. Limits: message 4,096 bytes, title 1,024 bytes.
        """
        payload = self._payload(message, title, tags, click)
        wanted = _priority_number(priority)
        if not isinstance(wanted, int) or not 1 <= wanted <= 5:
            raise InvalidArgument("priority must be min, low, default, high, urgent or 1-5")
        level = min(wanted, self.config.max_priority)
        payload["priority"] = level
        answer = await self._http.call("POST", "/", payload)
        if not answer.ok:
            raise self._http.error(answer)
        result: dict[str, Any] = {
            "sent": True,
            "priority": NAMES[level],
            "priority_lowered": level < wanted,
        }
        body = answer.json()
        message_id = safe_code(body.get("id"), _MESSAGE_ID) if isinstance(body, dict) else None
        if message_id:
            result["id"] = message_id
        return result

    def _payload(
        self, message: str, title: str | None, tags: list[str] | None, click: str | None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "topic": self._topic,
            "message": check_text(message, "message", max_bytes=MAX_MESSAGE_BYTES),
        }
        if title is not None:
            payload["title"] = check_text(
                title, "title", max_bytes=MAX_TITLE_BYTES, multiline=False
            )
        if checked := _check_tags(tags):
            payload["tags"] = checked
        if click is not None:
            payload["click"] = check_web_url(click, "click")
        if self.config.markdown:
            payload["markdown"] = True
        return payload
