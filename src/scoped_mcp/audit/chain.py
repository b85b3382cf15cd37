"""The hash chain: every audit record names the SHA-256 of the line written before it.

Rule (docs/audit.md, "Verifying the chain"): a line's hash is ``sha256(line)`` in lower-case hex,
over the line's exact bytes without its final ``\\n``. Each record carries ``seq`` (one more than
the record before it) and ``prev`` (the hash of the line before it). The first record of a segment
also carries ``chain``: ``{"reason": ..., "nonce": ...}``, where a segment starts a new file
(``new``, ``prev`` null), continues a rotated file (``rotated``, ``prev`` = the hash of that file's
last line), or follows a damaged or unchained line (``damaged_tail`` / ``unchained_tail``, ``prev``
= the hash of that line's bytes).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
TAIL_BLOCK = 64 * 1024
MAX_TAIL_SEARCH = 16 * 1024 * 1024


def line_hash(line: bytes) -> str:
    """The chain hash of one line: SHA-256 hex of its bytes, without the final newline."""
    return hashlib.sha256(line).hexdigest()


class HashChain:
    """The chain processor: stamps ``seq``/``prev`` (and ``chain`` on a segment's first record).

    Not thread-safe by itself: the caller holds one lock across ``__call__``, the write and
    ``advance``, so the line that is written is the line the next record links to.
    """

    def __init__(self, *, prev: str | None, seq: int, opening: Record | None) -> None:
        self._prev = prev
        self._seq = seq
        self._opening = opening

    def __call__(self, record: Record) -> Record:
        stamped = dict(record)
        if self._opening is not None:
            stamped["chain"] = self._opening
        stamped["seq"] = self._seq
        stamped["prev"] = self._prev
        return stamped

    def advance(self, line: bytes) -> None:
        """Record that ``line`` (without its newline) was written."""
        self._prev = line_hash(line)
        self._seq += 1
        self._opening = None

    def start_segment(self, reason: str, **facts: Any) -> None:
        """The next record opens a segment (a rotated file), still linked to the last line."""
        self._opening = opening(reason, **facts)

    @property
    def head(self) -> str | None:
        """The hash of the last line written (or found at open)."""
        return self._prev


def opening(reason: str, **facts: Any) -> Record:
    """The ``chain`` field of a segment's first record: why it starts, and a fresh nonce."""
    return {"reason": reason, "nonce": secrets.token_hex(16), **facts}


@dataclass(frozen=True, slots=True)
class Tail:
    """What the end of an existing file looks like."""

    line: bytes | None  # the last line without its newline; None for an empty file
    complete: bool  # False when the file does not end with a newline (a torn write)


def read_tail(fd: int) -> Tail:
    """The last line of the open file ``fd``, read backwards from the end with ``pread``."""
    size = os.fstat(fd).st_size
    if size == 0:
        return Tail(None, True)
    last = os.pread(fd, 1, size - 1)
    complete = last == b"\n"
    end = size - 1 if complete else size
    chunk = b""
    pos = end
    while pos > 0 and end - pos < MAX_TAIL_SEARCH:
        step = min(TAIL_BLOCK, pos)
        pos -= step
        chunk = os.pread(fd, step, pos) + chunk
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            return Tail(chunk[cut + 1 :], complete)
    return Tail(chunk, complete and pos == 0)


def resume(tail: Tail) -> HashChain:
    """The chain that continues a file ending with ``tail``."""
    if tail.line is None:
        return HashChain(prev=None, seq=0, opening=opening("new"))
    digest = line_hash(tail.line)
    if not tail.complete:
        facts = {"damaged_bytes": len(tail.line)}
        return HashChain(prev=digest, seq=0, opening=opening("damaged_tail", **facts))
    seq = _seq_of(tail.line)
    if seq is None:
        return HashChain(prev=digest, seq=0, opening=opening("unchained_tail"))
    return HashChain(prev=digest, seq=seq + 1, opening=None)


def _seq_of(line: bytes) -> int | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    seq = record.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or "prev" not in record:
        return None
    return seq
