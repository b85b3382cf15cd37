"""What an ``http_proxy`` request may say: its path, its query, its headers, and what comes back.

The agent gives a path relative to a service, never a URL. ``path_segments`` turns it into decoded
segments or refuses it; nothing is normalised silently. Refused outright: schemes and authorities
(``http://``, ``//host``), empty, ``.`` and ``..`` segments (also encoded as ``%2e``, full-width
dots, or ``..;`` path parameters), encoded separators (``%2f``, ``%5c``), double encoding (a ``%``
left after one decoding), invalid UTF-8, backslashes, whitespace and control characters.
``encode_segments`` re-encodes the checked segments canonically, so the server receives exactly
what was checked. Prefix checks compare whole segments: ``/v1`` does not allow ``/v10``.

Headers are allowlists both ways: the agent may set only a few content-negotiation headers (plus
any the operator adds), and only descriptive response headers come back, so hop-by-hop,
credential and cookie headers can never pass in either direction.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import quote, urlencode

from scoped_mcp.errors import InvalidArgument, ScopeViolation

MAX_PATH_CHARS: Final = 2048
MAX_QUERY_CHARS: Final = 4096
MAX_HEADERS: Final = 20
MAX_HEADER_VALUE_CHARS: Final = 1024

SAFE_REQUEST_HEADERS: Final = frozenset(
    {
        "accept", "accept-language", "content-type", "if-match", "if-none-match",
        "if-modified-since", "if-unmodified-since", "cache-control",
    }
)  # fmt: skip
"""Headers an agent may always set."""

NEVER_REQUEST_HEADERS: Final = frozenset(
    {
        "host", "authorization", "proxy-authorization", "cookie", "content-length",
        "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade", "expect",
        "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip",
        "accept-encoding", "content-encoding", "via", "max-forwards",
    }
)  # fmt: skip
"""Headers no configuration lets an agent set (framing, routing, identity, credentials)."""

SAFE_RESPONSE_HEADERS: Final = frozenset(
    {
        "content-type", "content-language", "content-range", "etag", "last-modified",
        "cache-control", "expires", "retry-after", "date", "age",
    }
)  # fmt: skip
"""Response headers returned to the agent."""

NEVER_RESPONSE_HEADERS: Final = frozenset(
    {
        "set-cookie", "set-cookie2", "www-authenticate", "proxy-authenticate", "authorization",
        "proxy-authorization", "cookie", "connection", "keep-alive", "transfer-encoding", "te",
        "trailer", "upgrade", "proxy-connection", "location", "content-location", "alt-svc",
    }
)  # fmt: skip
"""Response headers no configuration returns to the agent."""

_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_SCHEME_LIKE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_PERCENT: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_FORBIDDEN_RAW: Final = re.compile(r"[\x00-\x20\x7f-\x9f\\?#]")
_SEGMENT_SAFE: Final = "!$&'()*+,;=:@-._~"
_DOTS: Final = frozenset({".", ".."})


def _check_decoded(segment: str) -> str:
    if "%" in segment:
        raise ScopeViolation("path is percent-encoded twice")
    if "/" in segment or "\\" in segment:
        raise ScopeViolation("path has an encoded '/' or '\\'")
    if any((c.isspace() and c != " ") or unicodedata.category(c) in ("Cc", "Cf") for c in segment):
        raise ScopeViolation("path has whitespace or a control character once decoded")
    folded = unicodedata.normalize("NFKC", segment)
    if segment in _DOTS or folded.split(";", 1)[0] in _DOTS or segment.split(";", 1)[0] in _DOTS:
        raise ScopeViolation("path has a '.' or '..' segment")
    if "/" in folded or "\\" in folded or "%" in folded:
        raise ScopeViolation("path has a character that folds to '/', '\\' or '%'")
    return segment


def path_segments(path: str) -> tuple[tuple[str, ...], bool]:
    """The decoded segments of an agent's relative path and whether it ends in '/'."""
    if not isinstance(path, str):
        raise InvalidArgument("path must be a string")
    if len(path) > MAX_PATH_CHARS:
        raise InvalidArgument(f"path is longer than {MAX_PATH_CHARS} characters")
    if _SCHEME_LIKE.match(path) or path.startswith("//"):
        raise ScopeViolation("give a path relative to the service, not a URL")
    if _FORBIDDEN_RAW.search(path):
        raise ScopeViolation("path has whitespace, a control character, '\\', '?' or '#'")
    body = path[1:] if path.startswith("/") else path
    if not body:
        return (), False
    trailing = body.endswith("/")
    raw_segments = body[:-1].split("/") if trailing else body.split("/")
    segments = []
    for raw in raw_segments:
        if not raw:
            raise ScopeViolation("path has an empty segment ('//')")
        segments.append(_check_decoded(_decode_one(raw)))
    return tuple(segments), trailing


def _decode_one(raw: str) -> str:
    """Percent-decode ``raw`` once into text; refuse malformed escapes and invalid UTF-8."""
    if _PERCENT.sub("", raw).count("%"):
        raise ScopeViolation("path has a '%' that is not a valid percent-encoding")
    out = bytearray()
    index = 0
    while index < len(raw):
        char = raw[index]
        if char == "%":
            out.append(int(raw[index + 1 : index + 3], 16))
            index += 3
            continue
        out += char.encode("utf-8", "strict")
        index += 1
    try:
        return out.decode("utf-8", "strict")
    except UnicodeDecodeError:
        raise ScopeViolation("path is not valid UTF-8 once decoded") from None


def encode_segments(segments: Iterable[str], trailing: bool = False) -> str:
    """Canonical percent-encoded form of checked segments, starting with '/'."""
    text = "/" + "/".join(quote(s, safe=_SEGMENT_SAFE) for s in segments)
    return text + "/" if trailing and text != "/" else text


def under_prefix(segments: tuple[str, ...], prefixes: Iterable[tuple[str, ...]]) -> bool:
    """True if ``segments`` starts with one of ``prefixes``, segment by segment."""
    return any(segments[: len(prefix)] == prefix for prefix in prefixes)


def query_string(params: Mapping[str, object] | None) -> str:
    """``params`` as an encoded query; values must be strings, numbers or booleans."""
    if not params:
        return ""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            raise InvalidArgument("query values must be strings, numbers or booleans")
        for item in (name, text):
            if any(unicodedata.category(c) == "Cc" for c in item):
                raise InvalidArgument("query has a control character")
        pairs.append((name, text))
    encoded = urlencode(pairs, quote_via=quote)
    if len(encoded) > MAX_QUERY_CHARS:
        raise InvalidArgument(f"query is longer than {MAX_QUERY_CHARS} characters")
    return encoded


def request_headers(
    headers: Mapping[str, str] | None, *, allowed: frozenset[str]
) -> dict[str, str]:
    """The agent's headers if every name is allowed and every value is plain ASCII text."""
    if not headers:
        return {}
    if len(headers) > MAX_HEADERS:
        raise InvalidArgument(f"at most {MAX_HEADERS} headers")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower() if isinstance(name, str) else ""
        if not _HEADER_NAME.fullmatch(lower) or lower not in allowed:
            raise ScopeViolation(f"header {name!r:.40} is not one the agent may set")
        if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE_CHARS:
            raise InvalidArgument(f"header {lower} must be text of at most 1024 characters")
        if not all(" " <= c <= "~" for c in value):
            raise InvalidArgument(f"header {lower} must be printable ASCII")
        checked[lower] = value
    return checked


def response_headers(
    headers: Iterable[tuple[str, str]], *, allowed: frozenset[str]
) -> dict[str, str]:
    """Only the allowed response headers, names lower-cased, repeated ones joined."""
    kept: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        if lower in allowed and lower not in NEVER_RESPONSE_HEADERS:
            kept[lower] = f"{kept[lower]}, {value}" if lower in kept else value
    return kept


def header_name(value: str) -> str:
    """A configured header name, lower-cased, if it is a valid HTTP token."""
    lower = value.lower()
    if not _HEADER_NAME.fullmatch(lower):
        raise ValueError(f"{value!r} is not a valid header name")
    return lower
