"""Tool pins: the digest of an upstream tool's definition, and the lock file that holds them.

A pin is the SHA-256 of a canonical JSON rendering of one tool's ``name``, ``description`` and
``inputSchema`` (``canonical``): keys sorted at every level, no whitespace (``,`` and ``:``
separators), non-ASCII characters as themselves, UTF-8 bytes; an absent description or schema is
``null``. The lock file (``lock_path``: ``<manifest stem>.pins.yml`` beside the manifest) maps
module key -> tool name -> ``sha256`` plus the description and schema it was taken from, for the
operator to review. ``render`` gives the same bytes for the same pins; ``parse`` refuses anything
malformed naming the file and line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import mcp_types
import yaml

from scoped_mcp.errors import ConfigError

VERSION = 1
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
HEADER = (
    "# Tool pins written by `scoped-mcp pin`: the SHA-256 of each allowlisted upstream tool's\n"
    "# name, description and input schema. Review the descriptions, then commit this file.\n"
)


@dataclass(frozen=True, slots=True)
class Pin:
    """One tool's pinned digest and the definition it was computed from (for review only)."""

    digest: str
    description: str
    input_schema: str


Pins = Mapping[str, Mapping[str, Pin]]  # module key -> tool name -> pin


class PinFileError(ConfigError):
    """The lock file is unreadable or malformed; the message names the file and line."""


def canonical(tool: mcp_types.Tool) -> bytes:
    """The bytes a tool's pin is the SHA-256 of (see the module docstring)."""
    definition = {
        "name": tool.name,
        "description": tool.description,
        "inputSchema": tool.input_schema,
    }
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def digest(tool: mcp_types.Tool) -> str:
    """``sha256:<hex>`` of ``canonical(tool)``."""
    return "sha256:" + hashlib.sha256(canonical(tool)).hexdigest()


def pin_of(tool: mcp_types.Tool, scrub: Callable[[str], str] | None = None) -> Pin:
    """The pin of ``tool``; ``scrub`` (a redactor's) cleans the texts kept for review."""
    clean = scrub or (lambda text: text)
    schema = json.dumps(tool.input_schema, sort_keys=True, ensure_ascii=False)
    return Pin(digest(tool), clean(tool.description or ""), clean(schema))


def lock_path(manifest: Path) -> Path:
    """Where the pins of ``manifest`` live: ``<stem>.pins.yml`` in the manifest's directory."""
    return manifest.with_name(f"{manifest.stem}.pins.yml")


def render(pins: Pins) -> str:
    """The lock file's text: sorted by module and tool, one block per tool, stable bytes."""
    body = {
        "version": VERSION,
        "modules": {
            key: {
                name: {
                    "sha256": pin.digest,
                    "description": pin.description,
                    "input_schema": pin.input_schema,
                }
                for name, pin in sorted(tools.items())
            }
            for key, tools in sorted(pins.items())
        },
    }
    # The order is built above (sorted names, fixed field order); lines are never folded, so
    # a changed description or schema shows as changed lines and nothing else moves.
    return HEADER + yaml.dump(
        body, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 30
    )


class _Dumper(yaml.SafeDumper):
    """Multi-line text as ``|`` blocks, so a changed description diffs line by line."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def read(path: Path) -> dict[str, dict[str, Pin]] | None:
    """The pins in ``path``; ``None`` when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise PinFileError(
            f"{path}: cannot read the pin file ({type(exc).__name__})",
            fix="make it readable, or delete it and pin again: scoped-mcp pin --manifest M",
        ) from None
    return parse(text, path)


def parse(text: str, path: Path) -> dict[str, dict[str, Pin]]:
    """The pins in ``text``; ``PinFileError`` naming ``path`` and the line for anything else."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise _bad(path, line, "not valid YAML") from None
    if node is None:
        raise _bad(path, 1, "empty; expected 'version' and 'modules'")
    top = _mapping(node, path, "the file", {"version", "modules"})
    version = top.get("version")
    if version is None or _scalar(version, path, "version") != str(VERSION):
        raise _bad(path, _line(version or node), f"version must be {VERSION}")
    modules = top.get("modules")
    if modules is None:
        raise _bad(path, _line(node), "'modules' is missing")
    pins: dict[str, dict[str, Pin]] = {}
    for key, tools in _entries(modules, path, "modules").items():
        pins[key] = {
            name: _pin(entry, path, f"modules.{key}.{name}")
            for name, entry in _entries(tools, path, f"modules.{key}").items()
        }
    return pins


def _pin(node: yaml.Node, path: Path, where: str) -> Pin:
    fields = _mapping(node, path, where, {"sha256", "description", "input_schema"})
    if "sha256" not in fields:
        raise _bad(path, _line(node), f"{where}: 'sha256' is missing")
    value = _scalar(fields["sha256"], path, f"{where}.sha256")
    if not DIGEST.fullmatch(value):
        raise _bad(path, _line(fields["sha256"]), f"{where}.sha256 must be sha256:<64 hex>")
    description = fields.get("description")
    schema = fields.get("input_schema")
    return Pin(
        value,
        _scalar(description, path, f"{where}.description") if description else "",
        _scalar(schema, path, f"{where}.input_schema") if schema else "",
    )


def _entries(node: yaml.Node, path: Path, where: str) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise _bad(path, _line(node), f"{where} must be a mapping")
    found: dict[str, yaml.Node] = {}
    for key, value in node.value:
        name = _scalar(key, path, where)
        if name in found:
            raise _bad(path, _line(key), f"{where}: duplicate key {name!r}")
        found[name] = value
    return found


def _mapping(node: yaml.Node, path: Path, where: str, allowed: set[str]) -> dict[str, yaml.Node]:
    found = _entries(node, path, where)
    for key, _value in node.value:
        if key.value not in allowed:
            raise _bad(path, _line(key), f"{where}: unknown field {key.value!r}")
    return found


def _scalar(node: yaml.Node, path: Path, where: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise _bad(path, _line(node), f"{where} must be a plain value")
    return str(node.value)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _bad(path: Path, line: int, what: str) -> PinFileError:
    return PinFileError(
        f"{path}:{line}: invalid pin file: {what}",
        fix="correct that line, or delete the file and pin again: scoped-mcp pin --manifest M",
    )
