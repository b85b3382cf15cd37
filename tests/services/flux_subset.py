"""A tokenizer, parser and evaluator for the subset of Flux the influxdb module emits.

It is strict on purpose: a program that does not parse completely is an error, so an injected
fragment (a value that escaped its string literal) makes the fake answer 400 instead of quietly
running something else. Strings follow Flux's escapes (backslash, quote) and refuse ``${``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?[0-9]+(?:\.[0-9]+)?(?:ns|us|ms|mo|s|m|h|d|w|y)?)'
    r"|(?P<op>\|>|=>|==|!=|>=|<=|=~|!~|[()\[\],:<>])|(?P<name>[A-Za-z_][A-Za-z0-9_.]*))"
)
_REGEX = re.compile(r"\s*/((?:[^/\\]|\\.)*)/")


class FluxError(ValueError):
    """The program is outside the subset (or malformed)."""


@dataclass
class Token:
    kind: str
    text: str


def tokenize(program: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(program):
        if program[pos:].strip() == "":
            break
        if tokens and tokens[-1].text in ("=~", "!~") and (m := _REGEX.match(program, pos)):
            tokens.append(Token("regex", m.group(1).replace("\\/", "/")))
            pos = m.end()
            continue
        match = _TOKEN.match(program, pos)
        if match is None or match.end() == pos:
            raise FluxError(f"unexpected text at {pos}: {program[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        text = match.group(kind)
        if kind == "str":
            if "${" in text:
                raise FluxError("string interpolation")
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        tokens.append(Token(kind, text))
        pos = match.end()
    return tokens


class Parser:
    """program := import* call ('|>' call)* ; call := name '(' (name ':' value),* ')'."""

    def __init__(self, program: str) -> None:
        self.tokens = tokenize(program)
        self.pos = 0

    def peek(self, text: str | None = None) -> Token | None:
        token = self.tokens[self.pos] if self.pos < len(self.tokens) else None
        if text is not None and (token is None or token.text != text or token.kind == "str"):
            return None
        return token

    def take(self, text: str | None = None, kind: str | None = None) -> Token:
        token = self.peek()
        if token is None or (text and (token.text != text or token.kind == "str")):
            raise FluxError(f"expected {text or kind}, got {token}")
        if kind and token.kind != kind:
            raise FluxError(f"expected {kind}, got {token}")
        self.pos += 1
        return token

    def program(self) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
        imports = []
        while self.peek("import"):
            self.take("import")
            imports.append(self.take(kind="str").text)
        calls = [self.call()]
        while self.peek("|>"):
            self.take("|>")
            calls.append(self.call())
        if self.peek() is not None:
            raise FluxError(f"trailing tokens from {self.peek()}")
        return imports, calls

    def call(self) -> tuple[str, dict[str, Any]]:
        name = self.take(kind="name").text
        self.take("(")
        args: dict[str, Any] = {}
        while not self.peek(")"):
            key = self.take(kind="name").text
            self.take(":")
            args[key] = self.value()
            if not self.peek(")"):
                self.take(",")
        self.take(")")
        return name, args

    def value(self) -> Any:
        if self.peek("("):
            self.take("(")
            self.take("r")
            self.take(")")
            self.take("=>")
            return ("fn", self.or_expr())
        token = self.take()
        if token.kind == "name" and self.peek("("):
            self.pos -= 1
            return ("call", self.call())
        if token.kind == "num":
            return ("num", token.text)
        return (token.kind, token.text)

    def or_expr(self) -> Any:
        node = self.and_expr()
        while self.peek("or"):
            self.take("or")
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self) -> Any:
        node = self.compare()
        while self.peek("and"):
            self.take("and")
            node = ("and", node, self.compare())
        return node

    def compare(self) -> Any:
        left = self.operand()
        op = self.take(kind="op").text
        if op not in ("==", "!=", ">", ">=", "<", "<=", "=~", "!~"):
            raise FluxError(f"bad operator {op}")
        return ("cmp", op, left, self.operand())

    def operand(self) -> Any:
        token = self.take()
        if token.kind == "name" and token.text == "r" and self.peek("["):
            self.take("[")
            column = self.take(kind="str").text
            self.take("]")
            return ("col", column)
        if token.kind == "name" and token.text.startswith("r."):
            return ("col", token.text[2:])
        if token.kind == "name" and token.text == "regexp.compile":
            self.take("(")
            self.take("v")
            self.take(":")
            pattern = self.take(kind="str").text
            self.take(")")
            return ("regex", pattern)
        if token.kind == "name" and token.text in ("true", "false"):
            return ("lit", token.text == "true")
        if token.kind == "num":
            return ("lit", float(token.text) if "." in token.text else int(token.text))
        if token.kind in ("str", "regex"):
            return ("lit" if token.kind == "str" else "regex", token.text)
        raise FluxError(f"bad operand {token}")


def evaluate(node: Any, row: dict[str, Any]) -> bool:
    """Evaluate a parsed predicate against one row."""
    kind = node[0]
    if kind == "or":
        return evaluate(node[1], row) or evaluate(node[2], row)
    if kind == "and":
        return evaluate(node[1], row) and evaluate(node[2], row)
    _, op, left, right = node
    value = row.get(left[1])
    if op in ("=~", "!~"):
        found = value is not None and re.search(right[1], str(value)) is not None
        return found if op == "=~" else not found
    other = right[1]
    if value is None:
        return op == "!="
    try:
        return {
            "==": value == other, "!=": value != other, ">": value > other,
            ">=": value >= other, "<": value < other, "<=": value <= other,
        }[op]  # fmt: skip
    except TypeError:
        return False
