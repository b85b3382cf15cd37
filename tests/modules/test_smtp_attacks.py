"""smtp against recipient routing tricks, through the real call pipeline.

A recipient that could carry mail past the allowlist is refused, audited, and nothing is sent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime_support import audit_records, refusal, runtime_for

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "recipient", ["victim%evil.example@corp.example", "evil.example!victim@corp.example"]
)
async def test_smtp_source_routed_recipient_is_refused(tmp_path: Path, recipient: str) -> None:
    """'%' and '!' routing in a local part (which MTAs such as Postfix rewrite by default) cannot
    carry mail for an '@domain' allowlist entry to another domain."""
    config = {
        "sender": "agent@corp.example",
        "allowed_recipients": ["@corp.example"],
        "tls": "none",
    }
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": "9", "SMTP_USER": "u", "SMTP_PASSWORD": "pw12"}
    async with runtime_for(tmp_path, "smtp", config, env, "") as runtime:
        arguments = {"to": [recipient], "subject": "s", "body": "b"}
        message = await refusal(runtime, "smtp_send", arguments)
    assert "recipient" in message
    assert [r["outcome"] for r in audit_records(tmp_path, "smtp_send")] == ["denied"]
