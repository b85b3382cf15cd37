"""The redactor and URL credentials: every form in which the password is sent is scrubbed."""

from __future__ import annotations

import base64
import secrets
from urllib.parse import quote

from scoped_mcp.redaction import Redactor


def test_a_url_credentials_password_is_scrubbed_in_every_form_it_is_sent() -> None:
    """A URL credential with ``user:password@`` is sent as HTTP Basic (``CredentialAuth``): the
    password alone, percent-encoded, and the Basic header value are scrubbed, not only the URL."""
    password = "pw-" + secrets.token_hex(8) + "/+"
    redactor = Redactor()
    redactor.add(f"https://alice:{quote(password, safe='')}@ntfy.example/topic")
    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    for text in (
        f"bad password {password}",
        f"password={quote(password, safe='')}",
        f"echo: Authorization: Basic {basic}",
    ):
        scrubbed = redactor.scrub(text)
        assert password not in scrubbed
        assert quote(password, safe="") not in scrubbed
        assert basic not in scrubbed
