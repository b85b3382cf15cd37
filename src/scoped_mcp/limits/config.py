"""The manifest's ``rate_limits:`` block, validated when the manifest is loaded.

Every bucket is written as a rate (``30/minute``) or as ``{rate: 30/minute, burst: 5}``. A module
named under ``rate_limits.modules`` must be one the manifest loads; a literal Redis URL under
``shared`` must not hold a password (a reference to a secret holding the URL does).
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from scoped_mcp.limits.rate import FORMS, MAX_COUNT, Rate, parse_rate

URL_SCHEMES = ("redis://", "rediss://", "unix://")
_MODULE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_GLOB = re.compile(r"^[A-Za-z0-9_*?\[\]!-]{1,128}$")
_REFERENCE = re.compile(r"^[a-z][a-z0-9_-]*:.+", re.DOTALL)


class _Strict(BaseModel):
    """Unknown keys are errors, as everywhere in a manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BucketSpec(_Strict):
    """One token bucket: ``rate`` calls per unit of time, at most ``burst`` of them at once."""

    rate: str = Field(description=f"Calls per unit of time: {FORMS}.")
    burst: int | None = Field(
        default=None,
        ge=1,
        le=MAX_COUNT,
        description="Calls allowed at once after a quiet spell. Default: the rate's count.",
    )

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"rate": value}
        if not isinstance(value, dict):
            raise ValueError(f"write a rate ({FORMS}) or a mapping {{rate: 30/minute, burst: 5}}")
        return value

    @field_validator("rate")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_rate(value)
        return value

    @property
    def parsed(self) -> Rate:
        """The rate as numbers."""
        return parse_rate(self.rate)

    @property
    def capacity(self) -> int:
        """The bucket's size: ``burst``, or the rate's count."""
        return self.burst if self.burst is not None else self.parsed.count


class RateLimitsSpec(_Strict):
    """``rate_limits:``: Token buckets a call must pass before it runs (docs/rate-limits.md)."""

    overall: BucketSpec | None = Field(
        default=None, description="One bucket for every call of this agent."
    )
    modules: dict[str, BucketSpec] = Field(
        default_factory=dict,
        description="A bucket per module, by its key under modules:.",
    )
    tools: dict[str, BucketSpec] = Field(
        default_factory=dict,
        description="A bucket per tool-name glob ({module}_{tool}; * ? [...]); the tools one "
        "glob matches share its bucket.",
    )
    shared: str | None = Field(
        default=None,
        description="Share the buckets among all processes of this agent type through Redis: a "
        "secret reference of its URL (env:NAME, file:/path.yml#KEY, vault:...), or a "
        "redis://, rediss:// or unix:// URL without a password. Default: in-process buckets.",
    )
    timeout: float = Field(
        default=1.0,
        gt=0,
        le=10,
        description="Seconds allowed to connect to Redis and for each command; a call that "
        "cannot be checked in time is refused.",
    )

    @field_validator("modules")
    @classmethod
    def _module_keys(cls, value: dict[str, BucketSpec]) -> dict[str, BucketSpec]:
        for key in value:
            if not _MODULE.fullmatch(key):
                raise ValueError(f"{key!r} is not a module key (lower-case letters, digits, _)")
        return value

    @field_validator("tools")
    @classmethod
    def _globs(cls, value: dict[str, BucketSpec]) -> dict[str, BucketSpec]:
        for glob in value:
            if not _GLOB.fullmatch(glob):
                raise ValueError(
                    f"{glob!r} is not a tool-name glob: letters, digits, _ - and * ? [ ] !, "
                    "e.g. sqlite_* or filesystem_write_file"
                )
        return value

    @field_validator("shared")
    @classmethod
    def _shared(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if is_url(value):
            try:
                parts = urlsplit(value.strip())
                password = parts.password or "password" in parse_qs(parts.query)
            except ValueError:
                raise ValueError("not a valid URL") from None
            if password:
                raise ValueError(
                    "a password does not belong in the manifest: put the whole URL in a secret "
                    "and name it here, e.g. shared: env:SCOPED_MCP_RATE_REDIS_URL"
                )
            return value
        if not _REFERENCE.match(value):
            raise ValueError(
                "write a secret reference of the Redis URL (env:NAME, file:/path.yml#KEY, "
                "vault:mount/path#field) or a redis:// URL without a password"
            )
        return value


def is_url(text: str) -> bool:
    """Whether ``shared`` is written as a URL rather than a secret reference."""
    return text.strip().startswith(URL_SCHEMES)


def _known_modules(value: RateLimitsSpec, info: ValidationInfo) -> RateLimitsSpec:
    """A module limit for a module the manifest does not load is a typo, not a no-op."""
    modules = info.data.get("modules")
    if modules is None:
        return value
    for key in value.modules:
        if key not in modules:
            have = ", ".join(sorted(modules)) or "none"
            raise ValueError(f"modules.{key}: no module {key!r} under modules: (it has: {have})")
    return value


RateLimitsField = Annotated[RateLimitsSpec, AfterValidator(_known_modules)]
"""The type of ``Manifest.rate_limits``: the block, checked against the manifest's modules."""
