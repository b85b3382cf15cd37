"""``http_proxy`` configuration: the named services an agent may call, checked at start-up.

Each service is fixed by the operator: scheme, host, port and base path come from ``base_url``
and nothing the agent sends can change them. A base URL with credentials, a query, a fragment, a
host that is an IP literal in a non-canonical form (``2130706433``, ``0x7f.1``), or a literal the
network policy refuses (metadata, link-local; loopback and private ones unless
``allow_private_networks``) stops start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scoped_mcp.errors import ScopeViolation
from scoped_mcp.manifest import ManifestPath
from scoped_mcp.modules.http_proxy import rules
from scoped_mcp.net.client import HttpConfig
from scoped_mcp.net.policy import (
    PRIVATE_CLASSES,
    AddressClass,
    classify,
    host_address,
    is_canonical_literal,
)

Method = Literal["GET", "POST", "PUT", "DELETE"]
SERVICE_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_DNS_NAME: Final = re.compile(
    r"(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
)
_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class AuthSpec(BaseModel):
    """A credential the broker adds to every request of one service, as one header."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(description="Credential key holding the secret (e.g. INVENTORY_TOKEN).")
    header: str = Field(default="Authorization", description="Header that carries it.")
    scheme: str | None = Field(
        default="Bearer", description="Prefix before the value ('Bearer', 'Token'); null: none."
    )

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not _KEY.fullmatch(value):
            raise ValueError("must be letters, digits and _ (not starting with a digit)")
        return value

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        lower = rules.header_name(value)
        if lower in {"host", "cookie", "content-length", "transfer-encoding", "connection"}:
            raise ValueError(f"{value!r} cannot carry a credential")
        return value

    @field_validator("scheme")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,32}", value):
            raise ValueError("must be a single word such as Bearer or Token")
        return value


class ServiceSpec(BaseModel):
    """``modules.http_proxy.config.services.<name>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="http(s)://host[:port][/base/path] of the service.")
    paths: list[str] = Field(
        default=["/"], min_length=1, description="Path prefixes under base_url the agent may use."
    )
    methods: list[Method] = Field(default=["GET"], min_length=1, description="Allowed methods.")
    auth: AuthSpec | None = Field(default=None, description="Credential header to inject.")
    allow_private_networks: bool = Field(
        default=False,
        description="UNSAFE unless intended: allow loopback and private addresses for this "
        "service. Link-local and metadata addresses stay refused.",
    )
    request_headers: list[str] = Field(
        default=[], description="Extra request headers the agent may set."
    )
    response_headers: list[str] = Field(
        default=[], description="Extra response headers returned to the agent."
    )
    max_request_bytes: int = Field(
        default=64 * 1024, gt=0, le=16 * 1024 * 1024, description="Largest request body."
    )
    ca_file: ManifestPath | None = Field(
        default=None, description="PEM CA bundle to verify this service's HTTPS certificate."
    )

    @field_validator("request_headers")
    @classmethod
    def _request_headers(cls, value: list[str]) -> list[str]:
        for name in value:
            if rules.header_name(name) in rules.NEVER_REQUEST_HEADERS:
                raise ValueError(f"agents may never set {name!r}")
        return value

    @field_validator("response_headers")
    @classmethod
    def _response_headers(cls, value: list[str]) -> list[str]:
        for name in value:
            if rules.header_name(name) in rules.NEVER_RESPONSE_HEADERS:
                raise ValueError(f"{name!r} is never returned to agents")
        return value

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for path in value:
            try:
                rules.path_segments(path)
            except ScopeViolation as exc:
                raise ValueError(f"{path!r}: {exc.message}") from None
        return value

    @model_validator(mode="after")
    def _base_url(self) -> ServiceSpec:
        Target.build("check", self)
        return self


class HttpProxyConfig(HttpConfig):
    """``modules.http_proxy.config``."""

    services: dict[str, ServiceSpec] = Field(
        min_length=1,
        description="The services the agent may call, by name; each service's fields "
        "(base_url, paths, methods, auth, ...) are in docs/modules/http_proxy.md.",
    )
    max_redirects: int = Field(
        default=3, ge=0, le=10, description="Redirects followed within the same service."
    )

    @field_validator("services")
    @classmethod
    def _names(cls, value: dict[str, ServiceSpec]) -> dict[str, ServiceSpec]:
        for name in value:
            if not SERVICE_NAME.fullmatch(name):
                raise ValueError(f"service name {name!r}: lower-case letters, digits, - and _")
        return value


def _host(host: str, spec: ServiceSpec) -> str:
    """The host of a base URL if it is a DNS name or a canonical literal the policy allows."""
    try:
        literal = host_address(host)
    except ValueError:
        raise ValueError(f"base_url host {host!r} is not a valid address") from None
    if literal is None:
        if not _DNS_NAME.fullmatch(host):
            raise ValueError(f"base_url host {host!r} is not a valid DNS name")
        return host
    if not is_canonical_literal(host):
        raise ValueError(f"base_url host {host!r} is an IP in a legacy form; write {literal}")
    kind = classify(literal)
    if kind is not AddressClass.PUBLIC and not (
        kind in PRIVATE_CLASSES and spec.allow_private_networks
    ):
        hint = " (set allow_private_networks)" if kind in PRIVATE_CLASSES else ""
        raise ValueError(f"base_url is a {kind.label} address{hint}")
    return str(literal)


@dataclass(frozen=True, slots=True)
class Target:
    """One service as requests are built against it."""

    name: str
    scheme: str
    host: str
    port: int
    base_path: str
    prefixes: tuple[tuple[str, ...], ...]
    methods: frozenset[str]
    allow_private: bool
    request_headers: frozenset[str]
    response_headers: frozenset[str]
    max_request_bytes: int

    @classmethod
    def build(cls, name: str, spec: ServiceSpec) -> Target:
        """Check ``spec.base_url`` and precompute what each request needs."""
        try:
            parts = urlsplit(spec.base_url)
            port = parts.port
        except ValueError:
            raise ValueError("base_url is not a valid URL") from None
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError("base_url must be an http:// or https:// URL with a host")
        if "@" in parts.netloc or parts.query or parts.fragment or "?" in spec.base_url:
            raise ValueError("base_url must not contain credentials, a query or a fragment")
        host = _host(parts.hostname, spec)
        try:
            base, _ = rules.path_segments(parts.path or "/")
        except ScopeViolation as exc:
            raise ValueError(f"base_url path: {exc.message}") from None
        return cls(
            name=name,
            scheme=parts.scheme,
            host=host,
            port=port or _DEFAULT_PORTS[parts.scheme],
            base_path=rules.encode_segments(base) if base else "",
            prefixes=tuple(rules.path_segments(p)[0] for p in spec.paths),
            methods=frozenset(spec.methods),
            allow_private=spec.allow_private_networks,
            request_headers=rules.SAFE_REQUEST_HEADERS
            | {rules.header_name(h) for h in spec.request_headers},
            response_headers=rules.SAFE_RESPONSE_HEADERS
            | {rules.header_name(h) for h in spec.response_headers},
            max_request_bytes=spec.max_request_bytes,
        )

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def url(self, segments: tuple[str, ...], trailing: bool, query: str) -> str:
        """The full URL for checked segments: every part canonical, nothing from the agent raw."""
        path = self.base_path + (rules.encode_segments(segments, trailing) if segments else "")
        return self.origin + (path or "/") + (f"?{query}" if query else "")

    def relative(self, raw_path: str) -> str | None:
        """``raw_path`` relative to the base path, or None when it lies outside it."""
        if not self.base_path:
            return raw_path
        if raw_path == self.base_path or raw_path.startswith(self.base_path + "/"):
            return raw_path[len(self.base_path) :]
        return None
