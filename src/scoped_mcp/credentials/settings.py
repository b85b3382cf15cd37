"""The backends' own settings in a manifest's ``credentials:``, validated at manifest load.

``CredentialsSpec`` knows only the generic fields (``source``, ``ttl``, ``keys``). Every other key
belongs to a backend: a block named after its scheme (``vault:``, ``keyring:``, ``bitwarden:``),
validated by that backend's ``config_model``, or one of the file backend's two fields that the seed
format put directly under ``credentials:`` (``path``, ``unsafe_allow_insecure_file``). Only the
backends a manifest's keys name are imported. Errors read like every other manifest error:
``file:line: credentials.vault.auth: ...``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from scoped_mcp.credentials.backends import Catalog, owner_of
from scoped_mcp.credentials.backends.interface import SecretBackend
from scoped_mcp.manifest import CredentialsSpec, error_lines, line_of

GENERIC = frozenset(n for n, info in CredentialsSpec.model_fields.items() if not info.exclude)
TOP_LEVEL_FIELDS = {"path": "file", "unsafe_allow_insecure_file": "file"}
"""Keys directly under ``credentials:`` that belong to a backend, and the scheme that owns them."""


def owns(cls: type[SecretBackend], key: str) -> bool:
    """Whether ``key`` under ``credentials:`` is part of ``cls``'s settings."""
    if cls.config_model is None:
        return False
    if cls.config_block is None:
        return key in cls.config_model.model_fields
    return key == cls.config_block


def validate(
    raw: Mapping[str, Any],
    *,
    source_scheme: object,
    source: Path,
    node: yaml.Node | None,
    context: Mapping[str, Any],
) -> tuple[dict[str, BaseModel], list[str]]:
    """Each backend's validated settings by owner scheme, and one error line per problem."""
    catalog = Catalog()
    groups: dict[str, dict[str, Any]] = {}
    lines: list[str] = []
    for key, value in raw.items():
        owner = TOP_LEVEL_FIELDS.get(str(key), str(key))
        cls = catalog.find(owner)
        if cls is None or not owns(cls, str(key)):
            lines.append(_unknown(str(key), catalog, source, node))
            continue
        groups.setdefault(owner, {})[str(key)] = value
    settings: dict[str, BaseModel] = {}
    for owner, values in groups.items():
        cls = catalog.get(owner)
        found, problems = _one(cls, values, source=source, node=node, context=context)
        lines += problems
        if found is not None:
            settings[owner_of(cls, owner)] = found
    if not lines and isinstance(source_scheme, str):
        lines += _source_problem(catalog, source_scheme, settings, source, node)
    return settings, lines


def _one(
    cls: type[SecretBackend],
    values: dict[str, Any],
    *,
    source: Path,
    node: yaml.Node | None,
    context: Mapping[str, Any],
) -> tuple[BaseModel | None, list[str]]:
    model = cls.config_model
    assert model is not None
    if cls.config_block is None:
        raw: Any = values
        prefix: tuple[str, ...] = ("credentials",)
    else:
        raw, prefix = values[cls.config_block], ("credentials", cls.config_block)
        if raw is None:
            return None, []
    try:
        return model.model_validate(raw, context=dict(context)), []
    except ValidationError as exc:
        return None, error_lines(exc, source=source, node=node, prefix=prefix, model=model)


def _source_problem(
    catalog: Catalog,
    scheme: str,
    settings: Mapping[str, BaseModel],
    source: Path,
    node: yaml.Node | None,
) -> list[str]:
    """What the default source's backend needs of its settings (source: vault needs vault.path)."""
    cls = catalog.find(scheme)
    if cls is None:  # reported with the choices when a key needs it
        return []
    problem = cls.source_problem(settings.get(owner_of(cls, scheme)))
    if problem is None:
        return []
    line = line_of(node, ("credentials",))
    where = f"{source}:{line}" if line else str(source)
    return [f"{where}: credentials: Value error, {problem}"]


def _unknown(key: str, catalog: Catalog, source: Path, node: yaml.Node | None) -> str:
    allowed = set(GENERIC)
    for scheme in catalog.schemes:
        cls = catalog.find(scheme)
        if cls is not None and cls.config_model is not None:
            if cls.config_block is None:
                allowed.update(cls.config_model.model_fields)
            else:
                allowed.add(cls.config_block)
    line = line_of(node, ("credentials", key))
    where = f"{source}:{line}" if line else str(source)
    return f"{where}: credentials.{key}: unknown field; allowed here: {', '.join(sorted(allowed))}"
