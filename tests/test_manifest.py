"""Manifest loading: every refusal names the file, the line, the field path and what is allowed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from scoped_mcp import registry
from scoped_mcp.errors import ConfigError, ManifestError
from scoped_mcp.manifest import MAX_MANIFEST_BYTES, Manifest, line_of, load, parse
from tests.contract_support import FIXTURES


def _write(tmp_path: Path, text: str, name: str = "m.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def _error(path: Path) -> str:
    """The message load() + registry.plan() give for the manifest at ``path``."""
    with pytest.raises(ConfigError) as caught:
        registry.plan(load(path))
    return caught.value.diagnostics()


@pytest.fixture(autouse=True)
def _custom_modules_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))


def test_seed_manifest_shape_loads(tmp_path: Path) -> None:
    """The seed README's manifest shape (agent_type, description, modules, credentials) loads."""
    path = _write(
        tmp_path,
        """
        agent_type: research
        description: "Read-only research agent"
        modules:
          filesystem:
            mode: read
            config:
              base_path: /data/agents
        credentials:
          source: env
        """,
    )
    manifest = load(path)
    assert manifest.agent_type == "research"
    assert manifest.modules["filesystem"].mode == "read"
    assert manifest.source_path == path.resolve()


def test_relative_paths_resolve_against_the_manifest_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative paths mean the same whatever the working directory: they follow the manifest."""
    (tmp_path / "sub").mkdir()
    path = _write(tmp_path / "sub", "agent_type: a\naudit:\n  path: logs/a.jsonl\n")
    monkeypatch.chdir(tmp_path)
    assert load(path).audit.path == (tmp_path / "sub" / "logs" / "a.jsonl").resolve()
    planned = registry.plan(
        parse(
            "agent_type: a\nmodules:\n  filesystem:\n    config: {base_path: data}\n",
            source=tmp_path / "sub" / "x.yml",
        )
    )
    assert planned[0].config.base_path == tmp_path / "sub" / "data"


def test_unknown_top_level_key_names_line_and_allowed_fields(tmp_path: Path) -> None:
    """An unknown top-level key is refused with its line and the fields that are allowed."""
    path = _write(tmp_path, "agent_type: a\nmodules: {}\nmodlues: {}\n")
    message = _error(path)
    assert f"{path}:3: modlues: unknown field" in message
    assert "agent_type" in message.split("modlues", 1)[1]
    assert "modules" in message.split("modlues", 1)[1]


def test_unknown_key_in_module_entry_names_line_and_allowed_fields(tmp_path: Path) -> None:
    """An unknown key in a module entry gives modules.<name>.<key>, its line, and the options."""
    path = _write(
        tmp_path,
        """
        agent_type: a
        modules:
          filesystem:
            mode: read
            confg: {base_path: x}
        """,
    )
    message = _error(path)
    assert f"{path}:5: modules.filesystem.confg: unknown field" in message
    for allowed in ("type", "mode", "config"):
        assert allowed in message.split("confg", 1)[1]


def test_bad_mode_names_field_line_and_choices(tmp_path: Path) -> None:
    """mode must be read or write; the message says so, at the mode's line."""
    path = _write(tmp_path, "agent_type: a\nmodules:\n  filesystem:\n    mode: rw\n")
    message = _error(path)
    assert f"{path}:4: modules.filesystem.mode:" in message
    assert "'read' or 'write'" in message


def test_modules_must_be_a_mapping(tmp_path: Path) -> None:
    """modules: [] is refused as the wrong type, at its line."""
    path = _write(tmp_path, "agent_type: a\nmodules: []\n")
    assert f"{path}:2: modules: Input should be a valid dictionary" in _error(path)


def test_module_config_must_be_a_mapping(tmp_path: Path) -> None:
    """A module's config that is not a mapping is refused at its line."""
    path = _write(tmp_path, "agent_type: a\nmodules:\n  filesystem:\n    config: 5\n")
    assert f"{path}:4: modules.filesystem.config: Input should be a valid dictionary" in _error(
        path
    )


def test_module_config_wrong_type_names_line(tmp_path: Path) -> None:
    """A config value of the wrong type is refused with its full path and its line."""
    path = _write(
        tmp_path,
        """
        agent_type: a
        modules:
          filesystem:
            config:
              base_path: x
              max_file_bytes: big
        """,
    )
    message = _error(path)
    assert f"{path}:6: modules.filesystem.config.max_file_bytes:" in message
    assert "valid integer" in message


def test_missing_required_config_names_field_and_block_line(tmp_path: Path) -> None:
    """A missing required config key is named in full, at the line of the config block."""
    path = _write(tmp_path, "agent_type: a\nmodules:\n  filesystem:\n    config: {}\n")
    message = _error(path)
    assert f"{path}:4: modules.filesystem.config.base_path: Field required" in message


def test_unknown_config_key_lists_the_module_options(tmp_path: Path) -> None:
    """An unknown key in a module's config is refused and the module's options are listed."""
    path = _write(
        tmp_path,
        "agent_type: a\nmodules:\n  filesystem:\n    config: {base_path: x, base: y}\n",
    )
    message = _error(path)
    assert "modules.filesystem.config.base: unknown field" in message
    assert "base_path" in message.split("config.base:", 1)[1]
    assert "max_file_bytes" in message


def test_unknown_module_lists_builtins_with_file_and_line(tmp_path: Path) -> None:
    """An unknown module is refused with the file, its line, and the built-in modules."""
    path = _write(
        tmp_path,
        "agent_type: a\nmodules:\n  filesystem:\n    config: {base_path: x}\n  redis: {}\n",
    )
    message = _error(path)
    assert f"{path}:5: modules.redis: unknown module 'redis'" in message
    assert "built-in modules (" in message
    assert "filesystem" in message
    assert "sqlite" in message
    assert "scoped_mcp.modules" in message


def test_read_mode_on_write_only_module_is_refused(tmp_path: Path) -> None:
    """mode: read on a module with only write tools is refused (it would register nothing)."""
    path = _write(
        tmp_path,
        """
        agent_type: a
        modules:
          notify:
            type: custom_modules.notify:NotifyModule
            mode: read
        """,
    )
    message = _error(path)
    assert f"{path}:5: modules.notify.mode:" in message
    assert "only write tools" in message
    assert "remove the mode field" in message


def test_write_only_module_needs_no_mode(tmp_path: Path) -> None:
    """A write-only module without a mode field registers its write tools."""
    path = _write(
        tmp_path,
        "agent_type: a\nmodules:\n  notify:\n    type: custom_modules.notify:NotifyModule\n",
    )
    [planned] = registry.plan(load(path))
    assert planned.mode == "write"
    assert [t.name for t in planned.tools] == ["notify_send"]


def test_module_without_mode_defaults_to_read(tmp_path: Path) -> None:
    """A module with read tools and no mode field gets its read tools only."""
    path = _write(
        tmp_path, "agent_type: a\nmodules:\n  probe:\n    type: custom_modules.probe:ProbeModule\n"
    )
    [planned] = registry.plan(load(path))
    assert planned.mode == "read"
    assert "probe_store" not in [t.name for t in planned.tools]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("custom_modules.nothere:Thing", "cannot import 'custom_modules.nothere'"),
        ("custom_modules.probe:Nope", "is not a ToolModule subclass"),
        ("custom_modules.probe:FAKE_SECRET", "is not a ToolModule subclass"),
    ],
)
def test_bad_dotted_type_is_refused(tmp_path: Path, target: str, expected: str) -> None:
    """A 'type:' that cannot be imported or is not a ToolModule is refused with the module key."""
    path = _write(tmp_path, f"agent_type: a\nmodules:\n  mine:\n    type: {target}\n")
    message = _error(path)
    assert "modules.mine" in message
    assert expected in message


def test_malformed_dotted_type_is_refused(tmp_path: Path) -> None:
    """'type:' must look like package.module:ClassName."""
    path = _write(tmp_path, "agent_type: a\nmodules:\n  mine:\n    type: os.system('x')\n")
    assert "modules.mine.type" in _error(path)
    assert "package.module:ClassName" in _error(path)


def test_bad_module_key_is_refused(tmp_path: Path) -> None:
    """Module keys become tool-name prefixes: only lower-case identifiers are allowed."""
    path = _write(tmp_path, "agent_type: a\nmodules:\n  Bad-Name: {}\n")
    message = _error(path)
    assert "modules" in message
    assert "lower-case letters" in message


def test_invalid_yaml_shows_the_line(tmp_path: Path) -> None:
    """A YAML syntax error is reported with file and line number."""
    path = _write(tmp_path, "agent_type: a\nmodules:\n  filesystem:\n    mode: [read\n")
    with pytest.raises(ManifestError) as caught:
        load(path)
    assert caught.value.message.startswith(f"{path}:")
    line = int(caught.value.message.split(":", 2)[1])
    assert line >= 4
    assert "YAML" in caught.value.diagnostics()


@pytest.mark.parametrize(
    "text", ["- a\n- b\n", "just a string\n", "", "42\n"], ids=["list", "str", "empty", "int"]
)
def test_manifest_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    """A manifest that is not a YAML mapping is refused, naming the file."""
    path = _write(tmp_path, text) if text else tmp_path / "empty.yml"
    path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        load(path)
    assert caught.value.message.startswith(f"{path}: a manifest is a YAML mapping")


def test_missing_agent_type_is_refused(tmp_path: Path) -> None:
    """agent_type is required."""
    path = _write(tmp_path, "modules: {}\n")
    assert "agent_type: Field required" in _error(path)


def test_nonexistent_manifest_is_refused(tmp_path: Path) -> None:
    """A manifest that does not exist is refused with its path and how to fix it."""
    with pytest.raises(ManifestError) as caught:
        load(tmp_path / "nope.yml")
    assert str(tmp_path / "nope.yml") in caught.value.message
    assert "No such file" in caught.value.message
    assert caught.value.fix is not None


def test_oversized_manifest_is_refused(tmp_path: Path) -> None:
    """A manifest over the size limit is refused without being parsed."""
    path = tmp_path / "big.yml"
    path.write_text("agent_type: a\n" + "#" * MAX_MANIFEST_BYTES)
    with pytest.raises(ManifestError, match="larger than"):
        load(path)


def test_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    """Python-object YAML tags are refused by the safe loader, never constructed."""
    path = _write(tmp_path, "agent_type: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ManifestError):
        load(path)


def test_manifest_is_immutable(tmp_path: Path) -> None:
    """A loaded manifest cannot be modified."""
    manifest = load(_write(tmp_path, "agent_type: a\n"))
    with pytest.raises(ValueError, match="frozen"):
        manifest.agent_type = "b"


def test_duplicate_tool_names_are_refused(tmp_path: Path) -> None:
    """Two modules that would register the same tool name are refused, naming both."""
    path = _write(
        tmp_path,
        """
        agent_type: a
        modules:
          probe:
            type: custom_modules.probe:ProbeModule
          other:
            type: custom_modules.notify:PrefixedEcho
        """,
    )
    message = _error(path)
    assert f"{path}:5: modules.other: tool 'probe_echo' is also registered by module 'probe'" in (
        message
    )


def test_same_module_twice_under_two_keys_gets_two_prefixes(tmp_path: Path) -> None:
    """One module class under two manifest keys registers {key}_{tool} for each key."""
    path = _write(
        tmp_path,
        """
        agent_type: a
        modules:
          one:
            type: custom_modules.notify:NotifyModule
          two:
            type: custom_modules.notify:NotifyModule
        """,
    )
    assert [m.tools[0].name for m in registry.plan(load(path))] == ["one_send", "two_send"]


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("agent_type: a\nmodules: {}\nagent_type: b\n", 3, "agent_type"),
        (
            "agent_type: a\nmodules:\n  filesystem:\n    mode: read\n"
            "    config: {base_path: x}\n    mode: write\n",
            6,
            "mode",
        ),
    ],
    ids=["top-level", "nested"],
)
def test_duplicate_keys_are_refused(tmp_path: Path, text: str, line: int, key: str) -> None:
    """A key given twice is refused at the second one (YAML would silently keep the last)."""
    path = _write(tmp_path, text)
    with pytest.raises(ManifestError) as caught:
        load(path)
    assert caught.value.message == f"{path}:{line}: duplicate key {key!r}"


def test_line_of_finds_nested_nodes() -> None:
    """line_of gives the 1-based line of a nested key, or of its nearest existing parent."""
    import yaml

    node = yaml.compose("a: 1\nmodules:\n  fs:\n    mode: x\n")
    assert line_of(node, ("modules", "fs", "mode")) == 4
    assert line_of(node, ("modules", "fs", "missing")) == 3
    assert line_of(node, ("modules", "fs")) == 3
    assert line_of(node, ()) == 1
    assert line_of(None, ("a",)) is None


def test_manifest_model_forbids_extra_fields() -> None:
    """The model itself refuses unknown keys (no silent ignore), independent of the loader."""
    with pytest.raises(ValueError, match="Extra inputs"):
        Manifest.model_validate({"agent_type": "a", "extra": 1})


def test_alias_heavy_manifest_is_checked_quickly(tmp_path: Path) -> None:
    """YAML aliases are checked once per node, so an alias bomb cannot stall start-up."""
    lines = ['a0: &a0 {k: "x"}']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match="agent_type"):
        load(path)


def test_vault_ca_cert_that_does_not_exist_is_a_manifest_error(tmp_path: Path) -> None:
    """A Vault ca_cert path that is not a file stops the manifest with the field named."""
    path = tmp_path / "m.yml"
    path.write_text(
        "agent_type: a\ncredentials:\n  vault:\n    addr: https://vault.example:8200\n"
        f"    token_env: VAULT_TOKEN\n    ca_cert: {tmp_path / 'missing.pem'}\n"
    )
    with pytest.raises(ManifestError) as info:
        load(path)
    assert "credentials.vault" in str(info.value)
    assert "missing.pem is not a file" in str(info.value)
