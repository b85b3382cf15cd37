"""docs/manifest.md is exactly what the generator renders from the manifest's pydantic models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel

from maint import docs_gen
from scoped_mcp import manifest

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "docs" / "manifest.template.md"
OUTPUT = REPO / "docs" / "manifest.md"


def test_manifest_reference_is_up_to_date() -> None:
    """The committed reference equals a fresh rendering (run docs_gen --write if this fails)."""
    expected = docs_gen.render(TEMPLATE.read_text(), template_name="docs/manifest.template.md")
    assert OUTPUT.read_text() == expected, "run: python -m maint.docs_gen --write"


def test_every_manifest_field_is_documented() -> None:
    """Each field of every model reachable from Manifest appears as a row, dotted when nested."""
    text = OUTPUT.read_text()

    def walk(model: type[BaseModel], prefix: str) -> list[str]:
        names = []
        for name, info in model.model_fields.items():
            if info.exclude:
                continue
            names.append(prefix + name)
            nested = docs_gen._model(info.annotation)
            if nested is not None and prefix:
                names += walk(nested, f"{prefix}{name}.")
        return names

    for name, info in manifest.Manifest.model_fields.items():
        nested = docs_gen._model(info.annotation)
        if nested is None or info.exclude:
            continue
        for field in walk(nested, ""):
            assert f"| `{field}` |" in text, f"{name}.{field}"
    assert "| `bitwarden.session_file` |" in text


def test_check_flag_fails_on_a_stale_file(tmp_path: Path) -> None:
    """--check exits 1 and says how to fix it when the output differs; 0 once written."""
    stale = tmp_path / "manifest.md"
    stale.write_text("old\n")
    base = [sys.executable, "-m", "maint.docs_gen", "--template", str(TEMPLATE)]
    done = subprocess.run(
        [*base, "--output", str(stale), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "docs_gen --write" in done.stderr
    subprocess.run([*base, "--output", str(stale), "--write"], check=True)
    done = subprocess.run(
        [*base, "--output", str(stale), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0


def test_types_defaults_and_limits_are_rendered() -> None:
    """Literal, optional, list and dict types, defaults and bounds read as a person writes them."""
    rows = "\n".join(docs_gen.rows(manifest.CredentialsSpec))
    assert (
        "| `ttl` | number | `300` | Seconds a static value is trusted before re-reading. "
        "(> 0, <= 86400) |" in rows
    )
    assert "| `vault.auth` | `token` or `approle` | `token` |" in rows
    assert "| `keys` | mapping of string to string | `{}` |" in rows
    assert docs_gen.type_name(list[str]) == "list of string"
