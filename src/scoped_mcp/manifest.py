"""The manifest: which modules an agent type gets, in which mode, with which configuration.

``load()`` turns a YAML file into a validated ``Manifest`` or raises ``ManifestError`` naming the
file, the line, the field path (``modules.sqlite.mode``) and what would have been allowed. Relative
paths in module configuration resolve against the manifest's own directory, so a manifest means the
same thing whatever directory the agent host starts us in.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from scoped_mcp.approvals.config import ApprovalsSpec
from scoped_mcp.errors import ManifestError
from scoped_mcp.limits.config import RateLimitsField, RateLimitsSpec
from scoped_mcp.net.loopback import https_or_loopback

Mode = Literal["read", "write"]
MODULE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_MANIFEST_BYTES = 1024 * 1024


# libyaml's safe loader when PyYAML was built with it (its wheels are): the same documents and
# marks as the pure-Python one, parsed in C, which also leaves a zygote's child most of PyYAML's
# code untouched (and so unshared memory uncopied).
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _resolve_path(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str | os.PathLike):
        return value
    path = Path(os.path.expanduser(os.fspath(value)))
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path


ManifestPath = Annotated[Path, BeforeValidator(_resolve_path)]
"""A path in a manifest: ``~`` expands, relative paths are relative to the manifest file."""


class StrictModel(BaseModel):
    """Base of every manifest model: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModuleSpec(StrictModel):
    """One entry under ``modules:``. ``config`` is validated later by the module's own model."""

    type: str | None = Field(
        default=None,
        description="Where a custom module lives, as 'package.module:ClassName'.",
    )
    mode: Mode | None = Field(
        default=None,
        description="read (read tools only) or write (read and write tools). Omit for "
        "write-only notification modules. A module with read tools defaults to read.",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The module's own settings, validated by its configuration model (below).",
    )
    credentials: dict[str, str] = Field(
        default_factory=dict,
        description="Secret references for this module only; they override credentials.keys.",
    )

    @field_validator("type")
    @classmethod
    def _dotted(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.]+:[A-Za-z_]\w*", value):
            raise ValueError("must look like 'package.module:ClassName'")
        return value


SOURCE_NAME = r"^[a-z][a-z0-9_-]{0,31}$"


class CredentialsSpec(StrictModel):
    """Where the broker finds credentials. The default source serves every key not in ``keys``.

    Only the fields every backend shares are declared here. The other keys of ``credentials:``
    (``vault:``, ``keyring:``, ``bitwarden:``, ``path``, ...) belong to the backends, whose own
    models validate them when the manifest is loaded (``credentials/settings.py``); the result is
    ``settings``, by the owning backend's scheme.
    """

    source: str = Field(
        default="env",
        pattern=SOURCE_NAME,
        description="Backend serving every key not named in keys: env, file, keyring, vault, "
        "bitwarden, or a third-party scheme.",
    )
    ttl: float = Field(
        default=300,
        gt=0,
        le=86400,
        description="Seconds a static value is trusted before re-reading.",
    )
    keys: dict[str, str] = Field(
        default_factory=dict,
        description="Per-key secret references (env:, file:, keyring:, vault:, vault-dynamic:, "
        "bitwarden:) that override the default source.",
    )
    settings: dict[str, Any] = Field(default_factory=dict, exclude=True)


class AuditSpec(StrictModel):
    """Where the audit log goes. Default: the user's state directory, one file per agent."""

    path: ManifestPath | None = Field(
        default=None,
        description="The audit file (created 0600). Default: "
        "$XDG_STATE_HOME/scoped-mcp/audit/{agent_id}.jsonl.",
    )
    max_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=4096,
        description="Rotate the file once it reaches this size (bytes).",
    )
    keep: int = Field(
        default=5, ge=1, le=1000, description="Rotated files kept (FILE.1 ... FILE.keep)."
    )


class TelemetrySpec(StrictModel):
    """``telemetry:``: OpenTelemetry export (docs/observability.md). ``OTEL_*`` variables win."""

    enabled: bool = Field(
        default=True,
        description="false turns telemetry off even when OTEL_* variables are set.",
    )
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="OTLP/HTTP base URL, e.g. http://127.0.0.1:4318 (/v1/traces is appended). "
        "OTEL_EXPORTER_OTLP_ENDPOINT wins.",
    )
    service_name: str = Field(
        default="scoped-mcp",
        min_length=1,
        description="service.name of the spans and metrics. OTEL_SERVICE_NAME wins.",
    )
    traces: bool = Field(default=True, description="Export traces. OTEL_TRACES_EXPORTER wins.")
    metrics: bool = Field(default=True, description="Export metrics. OTEL_METRICS_EXPORTER wins.")


JwtAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"
]


def _default_algorithms() -> list[JwtAlgorithm]:
    return ["RS256", "ES256"]


class JwtAuthSpec(StrictModel):
    """``serve.http.jwt:``: verify access tokens (JWTs) from one issuer, as an OAuth resource
    server (docs/http.md, "JWTs from an issuer")."""

    issuer: str = Field(
        pattern=r"^https?://",
        description="The authorization server's issuer URL; tokens' iss must equal it. https, or "
        "http to a loopback address.",
    )
    audience: str = Field(
        pattern=r"^https?://",
        description="This server's resource URL (e.g. https://agents.example/mcp); tokens' aud "
        "must hold it.",
    )
    jwks_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="The issuer's JWKS; default: jwks_uri from the issuer's metadata "
        "(/.well-known/oauth-authorization-server, then openid-configuration).",
    )
    algorithms: list[JwtAlgorithm] = Field(
        default_factory=_default_algorithms,
        min_length=1,
        description="Signature algorithms accepted (asymmetric only; never none or HS*).",
    )
    agent_claim: str = Field(
        default="sub",
        min_length=1,
        description="The claim naming the agent; it must equal AGENT_ID (else 403).",
    )
    leeway_seconds: float = Field(
        default=30, ge=0, le=300, description="Clock skew allowed on exp, nbf and iat."
    )
    jwks_refresh_seconds: float = Field(
        default=60,
        ge=1,
        le=86400,
        description="A token with an unknown key id re-fetches the JWKS at most this often.",
    )

    @field_validator("issuer", "audience", "jwks_url")
    @classmethod
    def _https_or_loopback(cls, value: str | None) -> str | None:
        if value is not None and not https_or_loopback(value):
            raise ValueError("must be https://, or http:// to a loopback address")
        return value


class HttpServeSpec(StrictModel):
    """``serve.http:``: serving over streamable HTTP (``serve --http``); unused over stdio."""

    token: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_-]*:.+",
        description="Secret reference of the bearer token every HTTP request must present "
        "(env:NAME, file:/path.yml#KEY, vault:..., ...). Required for --http.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) allowed besides the server's own; any other "
        "Origin header is refused (403).",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header names accepted besides loopback names and the bound address.",
    )
    max_sessions: int = Field(
        default=8, ge=1, le=1000, description="MCP sessions open at once; more get 503."
    )
    session_idle_seconds: float = Field(
        default=900, gt=0, le=86400, description="A session idle this long is closed."
    )
    token_overlap_seconds: float = Field(
        default=30,
        ge=0,
        le=3600,
        description="After a token is rotated, the old one stays valid this long.",
    )
    auth: Literal["token", "jwt"] = Field(
        default="token",
        description="How requests authenticate: token (the shared bearer token) or jwt (JWTs "
        "from serve.http.jwt's issuer).",
    )
    jwt: JwtAuthSpec | None = Field(default=None, description="With auth: jwt, the issuer.")

    @model_validator(mode="after")
    def _one_scheme(self) -> HttpServeSpec:
        if self.auth == "jwt" and (self.jwt is None or self.token is not None):
            raise ValueError("auth: jwt needs a jwt: block and no token:")
        if self.auth == "token" and self.jwt is not None:
            raise ValueError("a jwt: block needs auth: jwt")
        return self


class ServeSpec(StrictModel):
    """``serve:``: how the server is reached besides stdio."""

    http: HttpServeSpec = Field(default_factory=HttpServeSpec)


class Manifest(StrictModel):
    """A whole manifest file."""

    agent_type: str = Field(min_length=1, description="Must equal AGENT_TYPE of the process.")
    description: str = Field(default="", description="Free text for people.")
    modules: dict[str, ModuleSpec] = Field(
        default_factory=dict, description="The modules this agent gets, by name (below)."
    )
    credentials: CredentialsSpec = Field(default_factory=CredentialsSpec)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    telemetry: TelemetrySpec | None = None
    serve: ServeSpec = Field(default_factory=ServeSpec)
    rate_limits: RateLimitsField = Field(default_factory=RateLimitsSpec)
    approvals: ApprovalsSpec | None = None
    source_path: Path | None = Field(default=None, exclude=True)

    @field_validator("modules")
    @classmethod
    def _module_keys(cls, value: dict[str, ModuleSpec]) -> dict[str, ModuleSpec]:
        for key in value:
            if not MODULE_KEY.fullmatch(key):
                raise ValueError(
                    f"module name {key!r} must be lower-case letters, digits and _ "
                    "(starting with a letter, at most 32 characters)"
                )
        return value

    @property
    def base_dir(self) -> Path:
        """The directory relative paths in this manifest are resolved against."""
        return self.source_path.parent if self.source_path else Path.cwd()


def load(path: str | os.PathLike[str]) -> Manifest:
    """Read, parse and validate a manifest file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError(
            f"{path}: cannot read manifest: {exc.strerror or exc}",
            fix="pass --manifest with the path of a readable YAML file",
        ) from exc
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path}: manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    return parse(raw.decode("utf-8", errors="replace"), source=path)


def parse(text: str, *, source: Path) -> Manifest:
    """Validate manifest ``text`` read from ``source`` (used in messages and for relative paths)."""
    try:
        node = yaml.compose(text, Loader=_LOADER)
        data = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else str(source)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ManifestError(f"{where}: {problem}", fix="fix the YAML syntax") from exc
    if not isinstance(data, dict):
        raise ManifestError(
            f"{source}: a manifest is a YAML mapping with at least 'agent_type' and 'modules'"
        )
    _refuse_duplicate_keys(node, source)
    context = {"base_dir": source.resolve().parent}
    data, owned = _split_credentials(data)
    lines: list[str] = []
    try:
        manifest: Manifest | None = Manifest.model_validate(data, context=context)
    except ValidationError as exc:
        manifest = None
        lines += error_lines(exc, source=source, node=node, model=Manifest)
    # Imported here: the backends' settings models build on this module's StrictModel.
    from scoped_mcp.credentials import settings as backend_settings

    found, problems = backend_settings.validate(
        owned,
        source_scheme=_source_scheme(data),
        source=source,
        node=node,
        context=context,
    )
    lines += problems
    if lines or manifest is None:
        raise ManifestError("invalid manifest\n  " + "\n  ".join(lines))
    credentials = manifest.credentials.model_copy(update={"settings": found})
    return manifest.model_copy(update={"source_path": source.resolve(), "credentials": credentials})


def _source_scheme(data: dict[str, Any]) -> object:
    credentials = data.get("credentials")
    return credentials.get("source", "env") if isinstance(credentials, dict) else None


def _split_credentials(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest with only the generic credential fields, and the backends' keys apart."""
    credentials = data.get("credentials")
    if not isinstance(credentials, dict):
        return data, {}
    generic = {n for n, info in CredentialsSpec.model_fields.items() if not info.exclude}
    kept = {k: v for k, v in credentials.items() if k in generic}
    owned = {k: v for k, v in credentials.items() if k not in generic}
    return {**data, "credentials": kept}, owned


def _refuse_duplicate_keys(node: yaml.Node | None, source: Path) -> None:
    """YAML lets a later key silently replace an earlier one; in a manifest that hides a setting."""
    pending, visited = [node], set()
    while pending:
        current = pending.pop()
        if id(current) in visited:  # aliases share nodes: visit each once
            continue
        visited.add(id(current))
        if isinstance(current, yaml.SequenceNode):
            pending.extend(current.value)
        if not isinstance(current, yaml.MappingNode):
            continue
        seen: set[str] = set()
        for key, value in current.value:
            name = str(key.value)
            if name in seen:
                raise ManifestError(
                    f"{source}:{key.start_mark.line + 1}: duplicate key {name!r}",
                    fix="keep one definition; YAML would silently use the last one",
                )
            seen.add(name)
            pending.append(value)


def describe_errors(
    exc: ValidationError,
    *,
    source: Path,
    node: yaml.Node | None,
    prefix: tuple[str | int, ...] = (),
    model: type[BaseModel] | None = None,
) -> str:
    """One line per pydantic error: ``file:line: field.path: what is wrong``.

    ``model`` is the model that was validated (at ``prefix``); with it, an unknown key is reported
    together with the keys that are allowed in its place.
    """
    lines = error_lines(exc, source=source, node=node, prefix=prefix, model=model)
    return "invalid manifest\n  " + "\n  ".join(lines)


def error_lines(
    exc: ValidationError,
    *,
    source: Path,
    node: yaml.Node | None,
    prefix: tuple[str | int, ...] = (),
    model: type[BaseModel] | None = None,
) -> list[str]:
    """The lines of ``describe_errors``, to join with other problems of the same manifest."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = prefix + tuple(error["loc"])
        field = ".".join(str(part) for part in loc) or "(top level)"
        line = line_of(node, loc)
        where = f"{source}:{line}" if line else str(source)
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            allowed = allowed_fields(model, tuple(error["loc"])[:-1]) if model else None
            message = (
                f"unknown field; allowed here: {', '.join(allowed)}"
                if allowed
                else "unknown field (check the spelling; see docs/manifest.md)"
            )
        lines.append(f"{where}: {field}: {message}")
    return lines


def allowed_fields(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str] | None:
    """The field names of the model found at ``loc`` inside ``model``, or None if there is none."""
    current: Any = model
    parts = list(loc)
    while True:
        if get_origin(current) in (Union, UnionType):
            models = [a for a in get_args(current) if isinstance(a, type)]
            models = [a for a in models if issubclass(a, BaseModel)]
            if len(models) != 1:
                return None
            current = models[0]
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not parts:
                fields = current.model_fields.items()
                return sorted(name for name, info in fields if not info.exclude)
            info = current.model_fields.get(str(parts.pop(0)))
            if info is None:
                return None
            current = info.annotation
        elif get_origin(current) is dict and parts:
            parts.pop(0)
            current = get_args(current)[1]
        else:
            return None


def line_of(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """The 1-based line of the field at ``loc`` (its key), or of its nearest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if pair is None:
                break
            key, node = pair
            line = key.start_mark.line + 1
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def source_node(manifest: Manifest) -> yaml.Node | None:
    """The YAML node tree of the manifest's file, read again to locate an error; None if gone."""
    if manifest.source_path is None:
        return None
    try:
        text = manifest.source_path.read_bytes()[:MAX_MANIFEST_BYTES].decode("utf-8", "replace")
        return yaml.compose(text, Loader=_LOADER)
    except (OSError, yaml.YAMLError):
        return None


def locate(manifest: Manifest, loc: tuple[str | int, ...]) -> str:
    """``file:line`` of the field at ``loc`` in the manifest, for messages about that field."""
    source = manifest.source_path or Path("manifest")
    line = line_of(source_node(manifest), loc)
    return f"{source}:{line}" if line else str(source)
