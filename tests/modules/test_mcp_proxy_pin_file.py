"""The pin digest's canonical form and the pin file: stable bytes, refusals naming file and line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import mcp_types
import pytest

from scoped_mcp.modules.mcp_proxy import pins

SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def tool(
    description: str | None = "Find things.", schema: dict[str, object] = SCHEMA
) -> mcp_types.Tool:
    return mcp_types.Tool(name="search", description=description, input_schema=schema)


def test_the_digest_is_sha256_of_the_documented_canonical_json() -> None:
    """Sorted keys at every level, no whitespace, UTF-8, wire field names, null when absent."""
    expected = (
        '{"description":"Find things \u00e9.","inputSchema":{"properties":{"q":{"type":"string"}},'
        '"required":["q"],"type":"object"},"name":"search"}'
    ).encode()
    found = tool("Find things \u00e9.")
    assert pins.canonical(found) == expected
    assert pins.digest(found) == "sha256:" + hashlib.sha256(expected).hexdigest()
    assert b'"description":null' in pins.canonical(tool(None))


def test_key_order_does_not_change_the_digest_but_any_text_does() -> None:
    """The same schema with keys in another order pins the same; one changed word does not."""
    reordered = {"required": ["q"], "properties": {"q": {"type": "string"}}, "type": "object"}
    assert pins.digest(tool(schema=reordered)) == pins.digest(tool())
    assert pins.digest(tool("Find things!")) != pins.digest(tool())
    assert pins.digest(tool(schema={**SCHEMA, "required": []})) != pins.digest(tool())


def test_render_is_stable_sorted_and_reads_back(tmp_path: Path) -> None:
    """The same pins render to the same bytes whatever the insertion order, and parse back."""
    one = pins.pin_of(tool())
    two = pins.pin_of(tool("Line one.\nLine two."))
    first = pins.render({"b": {"z": one, "a": two}, "a": {"x": one}})
    second = pins.render({"a": {"x": one}, "b": {"a": two, "z": one}})
    assert first == second
    assert first.index("  a:\n") < first.index("  b:\n")
    assert "      description: |-\n        Line one.\n        Line two.\n" in first
    assert pins.parse(first, tmp_path / "p.yml") == {"a": {"x": one}, "b": {"a": two, "z": one}}


def test_lock_path_lies_beside_the_manifest() -> None:
    """``agents/research.yml`` is pinned in ``agents/research.pins.yml``."""
    assert pins.lock_path(Path("/etc/agents/research.yml")) == Path("/etc/agents/research.pins.yml")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("version: 1\nmodules: [\n", ":3: invalid pin file: not valid YAML"),
        ("", ":1: invalid pin file: empty"),
        ("version: 2\nmodules: {}\n", ":1: invalid pin file: version must be 1"),
        ("version: 1\n", ":1: invalid pin file: 'modules' is missing"),
        ("version: 1\nextra: 1\nmodules: {}\n", ":2: invalid pin file: the file: unknown field"),
        (
            "version: 1\nmodules:\n  m:\n    t: {sha256: abc}\n",
            ":4: invalid pin file: modules.m.t.sha256",
        ),
        (
            "version: 1\nmodules:\n  m:\n    t: {}\n",
            ":4: invalid pin file: modules.m.t: 'sha256' is missing",
        ),
        ("version: 1\nmodules:\n  m: [1]\n", ":3: invalid pin file: modules.m must be a mapping"),
        (
            "version: 1\nmodules:\n  m: {}\n  m: {}\n",
            ":4: invalid pin file: modules: duplicate key",
        ),
    ],
)
def test_a_malformed_pin_file_is_refused_naming_file_and_line(text: str, where: str) -> None:
    """Each kind of damage is a configuration error naming the file, the line and the fix."""
    path = Path("/srv/agent.pins.yml")
    with pytest.raises(pins.PinFileError) as caught:
        pins.parse(text, path)
    assert caught.value.message.startswith(str(path) + where), caught.value.message
    assert "scoped-mcp pin --manifest" in (caught.value.fix or "")


def test_a_missing_pin_file_is_none_and_an_unreadable_one_an_error(tmp_path: Path) -> None:
    """No file means no pins (the module's policy decides); a directory in its place is refused."""
    assert pins.read(tmp_path / "none.pins.yml") is None
    (tmp_path / "dir.pins.yml").mkdir()
    with pytest.raises(pins.PinFileError, match="cannot read the pin file"):
        pins.read(tmp_path / "dir.pins.yml")
