"""The ``sandbox:`` block of a stdio ``mcp_proxy``: filesystem, network and resource limits.

``sandbox: off`` is the one way to run an upstream unconfined and must be written out; an empty
``sandbox:`` is an error rather than a silent default either way. YAML 1.1 reads ``off`` and
``on`` as booleans, so both spellings are accepted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from scoped_mcp.manifest import ManifestPath
from scoped_mcp.modules.mcp_proxy.sandbox.allowlist import Endpoint, parse_endpoint
from scoped_mcp.modules.mcp_proxy.sandbox.guard import refuse_protected

Off = Literal["off"]


class Limits(BaseModel):
    """Resource limits set with ``setrlimit`` in the sandbox before the upstream runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    memory_mb: int = Field(
        default=4096, ge=64, le=1024 * 1024, description="Address space (RLIMIT_AS), in MiB."
    )
    cpu_s: int | None = Field(
        default=None, ge=1, description="CPU seconds (RLIMIT_CPU); none by default."
    )
    files: int = Field(default=1024, ge=16, le=1 << 20, description="Open files (RLIMIT_NOFILE).")
    processes: int = Field(
        default=256, ge=1, le=1 << 16, description="Processes (RLIMIT_NPROC); see the docs."
    )
    tmp_mb: int = Field(
        default=256, ge=1, le=64 * 1024, description="Size of the private /tmp (home inside it)."
    )


class NetworkAllow(BaseModel):
    """``network: {allow: [host:port, ...]}``: only these, through scoped-mcp's filtering proxy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[str] = Field(min_length=1, max_length=256)

    @field_validator("allow")
    @classmethod
    def _entries(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_endpoint(entry)
        return value

    def endpoints(self) -> list[Endpoint]:
        return [parse_endpoint(entry) for entry in self.allow]


class SandboxConfig(BaseModel):
    """How a stdio upstream is confined by bubblewrap (the default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network: Literal["none"] | NetworkAllow = Field(
        default="none", description="'none' (own network namespace) or {allow: [host:port]}."
    )
    read_paths: list[ManifestPath] = Field(default_factory=list, max_length=64)
    write_paths: list[ManifestPath] = Field(default_factory=list, max_length=64)
    limits: Limits = Field(default_factory=Limits)
    bwrap: str = Field(default="bwrap", description="The bubblewrap binary (name or path).")

    @field_validator("read_paths", "write_paths")
    @classmethod
    def _paths(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        base = (info.context or {}).get("base_dir")
        checked = []
        for path in value:
            if not path.is_absolute():
                raise ValueError(f"{info.field_name}: {str(path)!r} must be an absolute path")
            if not path.exists():
                raise ValueError(f"{info.field_name}: {str(path)!r} does not exist")
            real = Path(os.path.realpath(path))
            refuse_protected(real, what=f"{info.field_name}: {str(path)!r}", manifest_dir=base)
            checked.append(real)
        return checked


def parse_sandbox(value: Any) -> Any:
    """``off``/``false`` -> "off"; ``on``/``true`` -> defaults; a mapping as it is."""
    if value is False or value == "off":
        return "off"
    if value is True or value == "on":
        return {}
    if value is None:
        raise ValueError("sandbox: give 'off' or a mapping (or leave the field out for defaults)")
    return value
