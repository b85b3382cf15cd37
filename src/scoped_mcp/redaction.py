"""Scrubs secret values from anything that leaves the process.

The broker registers every value it releases; ``scrub`` replaces each one, and its common encodings
(base64, URL-encoding, hex) and escapings (JSON string, Python repr), with ``[REDACTED]`` in tool
results, error texts and log records. A URL's ``user:password@`` is registered on its own too.

A value may be registered with an ``owner`` (an opaque label; the broker passes one per cache
entry). Inside ``watching(seen)`` every scrub also adds the owners of the forms it replaced to
``seen``: that is how a leak bound for the agent is traced back to the key it belongs to.
"""

from __future__ import annotations

import base64
import contextvars
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from pydantic import TypeAdapter, ValidationError
from pydantic.errors import PydanticSchemaGenerationError

from scoped_mcp.credentials.lease import wipe
from scoped_mcp.errors import BackendError

REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 4
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
_WORD = re.compile(r"[A-Za-z0-9_]*")
_SEEN: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "redaction_seen", default=None
)


def encodings(secret: str) -> set[str]:
    """The forms in which ``secret`` could plausibly appear in text."""
    raw = bytearray(secret, "utf-8")
    try:
        # The base64 cores are substrings of every base64 text of the secret, padded or not, so
        # the whole encodings need no alternative of their own in the pattern.
        forms = {secret, raw.hex(), raw.hex().upper()} | base64_cores(raw)
    finally:
        wipe(raw)
    # The forms below equal the raw one for the usual token alphabet; computing them anyway would
    # only leave more unwipeable copies of the secret in freed memory.
    if not _UNRESERVED.fullmatch(secret):
        forms |= {quote(secret, safe=""), quote_plus(secret, safe="")}
    if not (secret.isascii() and secret.isprintable()) or any(c in secret for c in "\"'\\"):
        # A JSON body or a %r in a log message would otherwise carry the value past the scrub.
        forms |= {
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
            repr(secret)[1:-1],
        }
    return {form for form in forms if len(form) >= MIN_SECRET_CHARS}


def base64_cores(raw: bytearray) -> set[str]:
    """The base64 characters that encode ``raw`` alone, at each of the three byte alignments.

    Content holding the secret after ``k`` other bytes encodes it as characters that also carry
    bits of its neighbours at both ends; the run between them depends on the secret only. Once it
    is replaced, what is left around the marker holds fewer than 6 bits of the secret at each end.
    """
    cores: set[str] = set()
    for lead in range(3):
        padded = bytearray(lead) + raw
        try:
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                text = encode(padded).decode("ascii")
                # Characters from ``skip`` on hold no bit of the ``lead`` bytes; those up to
                # ``end`` hold no bit of whatever follows the secret.
                skip, end = (0, 2, 3)[lead], len(padded) * 8 // 6
                cores.add(text[skip:end])
        finally:
            wipe(padded)
    return cores


def userinfo_secrets(secret: str) -> list[str]:
    """The password of a URL with ``user:password@`` and the ``user:password`` pair, decoded.

    A module may send them on their own (``CredentialAuth`` turns them into HTTP Basic, whose value
    is the pair in base64), and a server may echo them; neither is a form of the whole URL.
    """
    if "@" not in secret or "://" not in secret:
        return []  # the usual token: no parse, so no further unwipeable copies of it
    try:
        parts = urlsplit(secret.strip())
        password = parts.password
    except ValueError:
        return []
    if password is None:
        return []
    user, plain = unquote(parts.username or ""), unquote(password)
    return [plain, password, f"{user}:{plain}"]


def _escape(form: str) -> str:
    return form if _WORD.fullmatch(form) else re.escape(form)


class Redactor:
    """Holds the set of released secrets and removes them from text and structured values."""

    def __init__(self) -> None:
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._owners: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Redactor(<{len(self._forms)} forms>)"

    def add(self, secret: str, *, owner: str | None = None) -> None:
        """Register a released secret; it is scrubbed from everything from now on.

        ``owner`` labels every form of it, for ``watching``.
        """
        if len(secret) < MIN_SECRET_CHARS:
            # Too short to scrub without destroying ordinary text (ports, org names): documented in
            # docs/credentials.md as the one gap in redaction.
            return
        new = encodings(secret)
        for part in userinfo_secrets(secret):
            new |= encodings(part)
        if owner is not None:
            with self._lock:
                for form in new:
                    self._owners[form] = self._owners.get(form, frozenset()) | {owner}
        new -= self._forms
        if not new:
            return
        with self._lock:
            self._forms |= new
            ordered = sorted(self._forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(_escape(form) for form in ordered))

    def scrub(self, text: str) -> str:
        """``text`` with every registered secret form replaced."""
        pattern = self._pattern
        if pattern is None:
            return text
        if _SEEN.get() is None:
            return pattern.sub(REDACTED, text)
        return pattern.sub(self._replace_noting, text)

    def _replace_noting(self, match: re.Match[str]) -> str:
        seen = _SEEN.get()
        if seen is not None:
            seen |= self._owners.get(match.group(0), frozenset())
        return REDACTED

    @contextmanager
    def watching(self, seen: set[str]) -> Iterator[set[str]]:
        """Within the block, every scrub adds the owners of what it replaced to ``seen``."""
        token = _SEEN.set(seen)
        try:
            yield seen
        finally:
            _SEEN.reset(token)

    def scrub_value(self, value: Any) -> Any:
        """A copy of a JSON-like value (str, list, dict, ...) with secrets scrubbed from strings."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub_value(k): self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub_value(v) for v in value)
        return value

    def result_scrubber(self, return_type: Any = Any) -> Callable[[Any], Any]:
        """A function that removes released secrets from a tool's result, whatever its type.

        JSON-shaped builtins are scrubbed directly. Anything else (pydantic models, dataclasses,
        sets) is serialized as the MCP layer will serialize it; if that holds a secret, the
        scrubbed data is validated back into ``return_type``, or the result is withheld
        (``BackendError``) when it no longer fits.
        """
        adapters: list[TypeAdapter[Any]] = []

        def adapter() -> TypeAdapter[Any]:
            if not adapters:
                try:
                    adapters.append(TypeAdapter(return_type))
                except PydanticSchemaGenerationError:
                    adapters.append(TypeAdapter(Any))
            return adapters[0]

        def scrub(result: Any) -> Any:
            if self._pattern is None or _is_plain(result):
                return self.scrub_value(result)
            data = adapter().dump_python(result, mode="json", fallback=str, warnings=False)
            scrubbed = self.scrub_value(data)
            if scrubbed == data:
                return result
            try:
                return adapter().validate_python(scrubbed)
            except ValidationError:
                raise BackendError("result withheld: it contained a credential") from None

        return scrub


def _is_plain(value: Any) -> bool:
    """True for JSON-shaped builtins, which ``Redactor.scrub_value`` rebuilds exactly."""
    kind = type(value)
    if kind is list or kind is tuple:
        return all(_is_plain(item) for item in value)
    if kind is dict:
        return all(type(k) is str and _is_plain(v) for k, v in value.items())
    return value is None or kind in (str, int, float, bool)
