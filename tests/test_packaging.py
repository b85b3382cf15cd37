"""The install extras: `all` is every runtime extra, and the original README's names all exist.

Read from pyproject.toml with tomllib; the installed metadata shows what the build backend made
of it (an empty extra must still be declared, or pip warns that it does not exist).
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
NOT_RUNTIME = {"all", "dev"}
"""Extras that are not a runtime feature: the union itself, and the development tools."""
ORIGINAL_README_EXTRAS = {"http", "smtp", "sqlite", "all", "dragonfly", "otel", "vault"}
"""Every extra the original README's install lines and package metadata named."""
EMPTY = {"sqlite", "dragonfly"}
"""Extras that install nothing: sqlite is the standard library's; dragonfly is reserved."""


def extras() -> dict[str, list[str]]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    found: dict[str, list[str]] = project["optional-dependencies"]
    return found


def requirements(names: list[str]) -> set[str]:
    return {str(Requirement(name)) for name in names}


def test_all_holds_every_runtime_extra_and_nothing_else() -> None:
    """`pip install "scoped-mcp[all]"` installs what every runtime extra installs, no dev tool."""
    declared = extras()
    runtime = {name: reqs for name, reqs in declared.items() if name not in NOT_RUNTIME}
    union = set().union(*(requirements(reqs) for reqs in runtime.values()))
    everything = requirements(declared["all"])
    missing = {
        name: sorted(requirements(reqs) - everything)
        for name, reqs in runtime.items()
        if requirements(reqs) - everything
    }
    assert missing == {}, f"extra 'all' misses: {missing}"
    assert everything == union, f"'all' has more than the runtime extras: {everything - union}"
    assert {"http", "smtp", "vault", "keyring", "otel"} <= set(runtime)


def test_the_original_readme_extras_exist() -> None:
    """None of the original install lines makes pip warn that an extra does not exist."""
    declared = extras()
    assert set(declared) >= ORIGINAL_README_EXTRAS
    assert {name for name, reqs in declared.items() if not reqs} == EMPTY


def test_the_installed_metadata_declares_every_extra() -> None:
    """The built metadata (what pip reads) provides each extra, the empty ones included."""
    provided = set(metadata("scoped-mcp").get_all("Provides-Extra") or [])
    assert provided == set(extras())


def test_constraints_pin_every_runtime_requirement() -> None:
    """constraints.txt pins a version of each package `all` installs."""
    pinned = set()
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line:
            pinned.add(canonicalize_name(line.split("==", 1)[0]))
    wanted = {canonicalize_name(Requirement(name).name) for name in extras()["all"]}
    assert wanted - pinned == set()


def test_the_readme_documents_every_extra() -> None:
    """Each extra has a row in README.md's install table."""
    readme = (ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\| `([a-z]+)` \|", readme, flags=re.MULTILINE))
    assert set(extras()) - {"dev"} <= rows
