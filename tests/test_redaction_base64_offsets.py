"""The redactor and base64: a secret is scrubbed at whatever byte offset it sits in the content."""

from __future__ import annotations

import base64
import binascii
import re
import secrets

import pytest

from scoped_mcp.redaction import REDACTED, Redactor

_ALPHABETS = {
    "standard": (base64.b64encode, b"+/"),
    "urlsafe": (base64.urlsafe_b64encode, b"-_"),
}


def recoverable(secret: bytes, text: str, altchars: bytes) -> bool:
    """True when some run of base64 characters in ``text``, decoded at any of its four character
    alignments, holds ``secret``: written out here so as not to trust the code under test."""
    alphabet = re.escape(altchars.decode())
    for run in re.findall(rf"[A-Za-z0-9{alphabet}]+", text.replace(REDACTED, " ")):
        for start in range(4):
            chunk = run[start:]
            if len(chunk) % 4 == 1:
                chunk = chunk[:-1]
            chunk += "=" * (-len(chunk) % 4)
            try:
                decoded = base64.b64decode(chunk, altchars=altchars)
            except binascii.Error:
                continue
            if secret in decoded:
                return True
    return False


@pytest.mark.parametrize("alphabet", sorted(_ALPHABETS))
@pytest.mark.parametrize("prefix", range(6))
@pytest.mark.parametrize("suffix", [0, 1, 2, 5])
def test_base64_of_content_holding_the_secret_at_any_offset_is_scrubbed(
    alphabet: str, prefix: int, suffix: int
) -> None:
    """Base64 of bytes that hold the secret after any number of other bytes, and before any,
    leaves no decodable copy of it once scrubbed."""
    secret = "tok" + secrets.token_urlsafe(24)
    redactor = Redactor()
    redactor.add(secret)
    encode, altchars = _ALPHABETS[alphabet]
    content = b"\xff=" * 3
    blob = content[:prefix] + secret.encode() + content[:suffix]
    for text in (encode(blob).decode(), encode(blob).decode().rstrip("=")):
        assert recoverable(secret.encode(), text, altchars)  # the check itself finds it
        scrubbed = redactor.scrub(f'{{"body_base64": "{text}"}}')
        assert not recoverable(secret.encode(), scrubbed, altchars), (prefix, suffix)


def test_base64_offset_forms_leave_ordinary_text_alone() -> None:
    """The extra base64 forms are long enough not to match text that holds no secret."""
    redactor = Redactor()
    redactor.add("tok" + secrets.token_urlsafe(24))
    text = base64.b64encode(secrets.token_bytes(4096)).decode()
    assert redactor.scrub(text) == text
