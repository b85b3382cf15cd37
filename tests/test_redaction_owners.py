"""The redactor traces what it scrubs back to its owner, inside ``watching`` only."""

from __future__ import annotations

import base64
import secrets
from urllib.parse import quote

from scoped_mcp.redaction import REDACTED, Redactor


def test_watching_names_the_owner_of_every_form_it_scrubs() -> None:
    """Inside ``watching`` a scrub notes the owner of each value it replaced, in any encoding."""
    redactor = Redactor()
    first, second = "tok" + secrets.token_urlsafe(24), "tok" + secrets.token_urlsafe(24)
    redactor.add(first, owner="a")
    redactor.add(second, owner="b")
    for text in (first, first.encode().hex(), base64.b64encode(b"x" + first.encode()).decode()):
        seen: set[str] = set()
        with redactor.watching(seen):
            assert REDACTED in redactor.scrub(f"echo {text} end")
        assert seen == {"a"}
    assert redactor.scrub(second) == REDACTED  # outside a watch: scrubbed, nothing noted
    punctuated = secrets.token_urlsafe(12) + " a+b/c=d"
    redactor.add(punctuated, owner="c")
    seen = set()
    with redactor.watching(seen):
        assert redactor.scrub(quote(punctuated, safe="")) == REDACTED
    assert seen == {"c"}
