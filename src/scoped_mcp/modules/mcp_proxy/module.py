"""mcp_proxy: an upstream MCP server's allowlisted tools, with credentials it never keeps.

The upstream is a child process spoken to over stdio (``command``, ``args``, ``env``) or a
streamable-HTTP server (``url``, ``headers``). Credentials reach it from the broker, spelled
``${cred:KEY}`` inside an ``env`` or ``headers`` value: into the child's environment (which holds
nothing else; not even PATH unless ``env`` gives it) or into request headers. When a value
behind them changes (a lease rotated, a TTL re-read found a new value) the child is restarted, or
the HTTP session rebuilt with the new header, between calls (see ``upstream``).

A stdio child runs in a bubblewrap sandbox unless ``sandbox: off`` says otherwise, and may get
credentials as files (``files:``, referenced as ``${file:NAME}`` in ``env`` or ``args``); see
``sandbox``.

Only the tools named under ``tools:`` exist for the agent, as ``{module}_{tool}``, each marked
read or write and registered by the module's mode; one missing upstream stops start-up. Upstream
results and error texts go through the same redaction as every tool's. Their definitions are
checked against the operator's pins (``guard``, ``pins``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx2
import mcp_types
import pydantic_core
from fastmcp.client.transports.base import ClientTransport
from fastmcp.client.transports.http import StreamableHttpTransport
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from scoped_mcp.credentials.view import CredentialView
from scoped_mcp.errors import BackendError, ModuleLoadError
from scoped_mcp.identity import AgentContext
from scoped_mcp.modules._base import DynamicTool, ToolMode, ToolModule
from scoped_mcp.modules.mcp_proxy import pins as pin_file
from scoped_mcp.modules.mcp_proxy.guard import PinGuard, PinPolicy
from scoped_mcp.modules.mcp_proxy.sandbox import SandboxConfig, parse_sandbox
from scoped_mcp.modules.mcp_proxy.sandbox.launch import merged_env
from scoped_mcp.modules.mcp_proxy.sandbox.runner import OFF_WARNING, Runner
from scoped_mcp.modules.mcp_proxy.stdio import ExactEnvStdio
from scoped_mcp.modules.mcp_proxy.upstream import Upstream, UpstreamFailed
from scoped_mcp.net.loopback import is_loopback_host as _loopback
from scoped_mcp.tool_control import ToolControl

CRED = re.compile(r"\$\{cred:([A-Za-z_][A-Za-z0-9_]{0,127})\}")
FILE = re.compile(r"\$\{file:([A-Za-z0-9_][A-Za-z0-9_.-]{0,63})\}")
REF_SPELLING = {CRED.pattern: "${cred:KEY}", FILE.pattern: "${file:NAME}"}
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _templated(
    where: str, values: dict[str, str], refs: tuple[re.Pattern[str], ...] = (CRED,)
) -> dict[str, str]:
    """Refuse any ``${`` that is not a well-formed reference allowed here (a typo must not pass)."""
    allowed = " or ".join(REF_SPELLING[p.pattern] for p in refs)
    for name, value in values.items():
        rest = value
        for pattern in refs:
            rest = pattern.sub("", rest)
        if "${" in rest:
            raise ValueError(f"{where}.{name}: '${{' may only start a {allowed} reference")
    return values


class McpProxyConfig(BaseModel):
    """The ``config:`` block of an ``mcp_proxy`` module."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str | None = Field(default=None, description="The upstream's executable (stdio).")
    args: list[str] = Field(default_factory=list, description="Its arguments.")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="The child's whole environment; values may hold ${cred:KEY}.",
    )
    cwd: Path | None = Field(default=None, description="The child's working directory.")
    url: str | None = Field(default=None, description="A streamable-HTTP upstream's endpoint.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Request headers; values may hold ${cred:KEY}."
    )
    tools: dict[str, ToolMode] = Field(
        min_length=1, description="Upstream tool name -> read or write: the allowlist."
    )
    start_timeout: float = Field(default=30, gt=0, le=600, description="Seconds to start.")
    call_timeout: float = Field(default=60, gt=0, le=3600, description="Seconds per call.")
    stop_timeout: float = Field(default=5, gt=0, le=60, description="Seconds per stop step.")
    max_result_bytes: int = Field(
        default=8 * 1024 * 1024,
        gt=0,
        le=64 * 1024 * 1024,
        description="Largest upstream result (its JSON) handed to the agent; larger ones fail.",
    )
    stderr: Literal["log", "discard"] = Field(
        default="log", description="The child's stderr: into the ops log (scrubbed) or dropped."
    )
    sandbox: Annotated[SandboxConfig | Literal["off"], BeforeValidator(parse_sandbox)] = Field(
        default_factory=SandboxConfig,
        description="The stdio child's bubblewrap sandbox; 'off' runs it unconfined (warned).",
    )
    files: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Credential files: NAME -> content with ${cred:KEY}; used as ${file:NAME}.",
    )
    _manifest_dir: Any = PrivateAttr(default=None)
    pins: PinPolicy = Field(
        default="warn",
        description="Without pins for this module (scoped-mcp pin): warn at start-up, or "
        "refuse to start (required). Tools that differ from their pins are always withdrawn.",
    )
    _manifest: Path | None = PrivateAttr(default=None)
    oauth: Any = Field(
        default=None,
        description="OAuth 2.1 for a url upstream: store, scopes, optional client "
        "(docs/modules/mcp_proxy.md#oauth-upstreams).",
    )

    @field_validator("oauth", mode="before")
    @classmethod
    def _oauth(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        # Imported only when a manifest has an oauth: block.
        from scoped_mcp.oauth.config import from_manifest

        return from_manifest(value, info.context or {})

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not ENV_NAME.fullmatch(name):
                raise ValueError(f"env: {name!r} is not a valid variable name")
        return _templated("env", value, (CRED, FILE))

    @field_validator("args")
    @classmethod
    def _args(cls, value: list[str]) -> list[str]:
        # Never a credential in argv: any local user can read /proc/<pid>/cmdline.
        _templated("args", {str(i): arg for i, arg in enumerate(value)}, (FILE,))
        return value

    @field_validator("files")
    @classmethod
    def _files(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not FILE.fullmatch("${file:" + name + "}"):
                raise ValueError(f"files: {name!r} must be 1-64 of A-Z a-z 0-9 _ . - (a file name)")
        return _templated("files", value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not HEADER_NAME.fullmatch(name) or any(c in text for c in "\r\n\0"):
                raise ValueError(f"headers: {name!r} is not a valid header")
        return _templated("headers", value)

    @field_validator("tools")
    @classmethod
    def _tools(cls, value: dict[str, ToolMode]) -> dict[str, ToolMode]:
        for name in value:
            if not TOOL_NAME.fullmatch(name):
                raise ValueError(f"tools: {name!r} is not an MCP tool name")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.username:
            raise ValueError("url must be https://host/path (no user info)")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError("plain http is allowed only to a loopback address")
        return value

    @model_validator(mode="after")
    def _manifest_path(self, info: ValidationInfo) -> McpProxyConfig:
        manifest = (info.context or {}).get("manifest")
        self._manifest = manifest if isinstance(manifest, Path) else None
        return self

    @property
    def manifest(self) -> Path | None:
        """The manifest this block came from (its pin file lies beside it), when known."""
        return self._manifest

    @model_validator(mode="after")
    def _one_upstream(self, info: ValidationInfo) -> McpProxyConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of 'command' (stdio child) or 'url' (HTTP)")
        if self.url is not None and (self.env or self.args or self.cwd):
            raise ValueError("'env', 'args' and 'cwd' apply to a 'command' upstream only")
        if self.command is not None and self.headers:
            raise ValueError("'headers' apply to a 'url' upstream only")
        if self.url is not None and ({"sandbox", "files"} & self.model_fields_set):
            raise ValueError("'sandbox' and 'files' apply to a 'command' upstream only")
        used = [*self.args, *self.env.values()]
        missing = sorted({n for text in used for n in FILE.findall(text)} - set(self.files))
        if missing:
            name = missing[0]
            raise ValueError(f"${{file:{name}}} is used but 'files' has no entry {name!r}")
        self._manifest_dir = (info.context or {}).get("base_dir")
        if self.oauth is not None and self.url is None:
            raise ValueError("'oauth' applies to a 'url' upstream only")
        if self.oauth is not None and any(h.lower() == "authorization" for h in self.headers):
            raise ValueError("with 'oauth', the Authorization header is the broker's: remove it")
        return self

    @property
    def manifest_dir(self) -> Any:
        """The directory the manifest was loaded from (None when validated without one)."""
        return self._manifest_dir

    def credential_keys(self) -> list[str]:
        """Every key a ``${cred:KEY}`` names, in order of first use."""
        found: dict[str, None] = {}
        for value in [*self.env.values(), *self.headers.values(), *self.files.values()]:
            found.update(dict.fromkeys(CRED.findall(value)))
        if self.oauth is not None:
            found.update(dict.fromkeys(self.oauth.credential_keys()))
        return list(found)


class McpProxyModule(ToolModule):
    """Proxies allowlisted tools of one upstream MCP server (stdio child or streamable HTTP)."""

    name = "mcp_proxy"
    config_model = McpProxyConfig

    @classmethod
    def declared_credentials(cls, config: Any) -> tuple[Sequence[str], Sequence[str]]:
        assert isinstance(config, McpProxyConfig)
        return tuple(config.credential_keys()), ()

    @classmethod
    def configured_tools(cls, config: Any) -> Sequence[tuple[str, ToolMode]]:
        assert isinstance(config, McpProxyConfig)
        return tuple(config.tools.items())

    @classmethod
    def configuration_warnings(cls, config: Any) -> Sequence[str]:
        assert isinstance(config, McpProxyConfig)
        return [OFF_WARNING] if config.command is not None and config.sandbox == "off" else []

    def __init__(self, agent_ctx: AgentContext, credentials: CredentialView, config: Any) -> None:
        super().__init__(agent_ctx, credentials, config)
        self.cfg: McpProxyConfig = config
        self._keys = self.cfg.credential_keys()
        self._mac_key = secrets.token_bytes(32)
        self._label = "mcp_proxy"
        self._tools: list[DynamicTool] = []
        self.upstream: Upstream | None = None
        sandbox = self.cfg.sandbox
        self.runner = Runner(
            sandbox if isinstance(sandbox, SandboxConfig) else None,
            label=self._label,
            manifest_dir=self.cfg.manifest_dir,
        )
        self._control: ToolControl | None = None
        self.guard: PinGuard | None = None
        self.oauth: Any = None  # an oauth.source.TokenSource with an oauth: block

    def bind_server(self, control: ToolControl) -> None:
        self._control = control

    def _new_upstream(self, verify: bool) -> Upstream:
        return Upstream(
            connect=self._connect,
            fingerprint=self._fingerprint,
            start_seconds=self.cfg.start_timeout,
            call_seconds=self.cfg.call_timeout,
            label=self._label,
            verify=self.guard.verify if verify and self.guard is not None else None,
        )

    async def _prepare(self) -> None:
        """What an upstream needs before it starts: its OAuth token source, its sandbox."""
        if self.cfg.oauth is not None and self.oauth is None:
            from scoped_mcp.modules.mcp_proxy.oauth import token_source

            self.oauth = await token_source(self.cfg.oauth, self.agent_ctx, self.credentials)
        if self.cfg.command is not None:
            await self.runner.start()

    async def _release(self) -> None:
        await self.runner.close()
        if self.oauth is not None:
            await self.oauth.close()

    async def list_upstream(self) -> list[mcp_types.Tool]:
        """Start the upstream exactly as serving would, list its tools, stop it (``pin``)."""
        upstream = self._new_upstream(verify=False)
        try:
            await self._prepare()
            return await upstream.start()
        except (UpstreamFailed, BackendError) as exc:
            raise ModuleLoadError(f"mcp_proxy: {exc}") from None
        finally:
            await upstream.close()
            await self._release()

    async def startup(self) -> None:
        """Start the upstream, list its tools and keep the allowlisted ones; fail naming gaps.

        Tools that differ from their pins are left out, and the upstream is stopped for good.
        """
        key = self._control.key if self._control is not None else self._label
        manifest = self.cfg.manifest
        self.guard = PinGuard(
            key=key,
            allowlist=list(self.cfg.tools),
            policy=self.cfg.pins,
            lock_file=pin_file.lock_path(manifest) if manifest is not None else None,
            manifest=manifest,
            control=self._control,
        )
        self.guard.load()
        upstream = self._new_upstream(verify=True)
        try:
            await self._prepare()
            listed = await upstream.start()
            self._tools = self._allowlisted(listed)
            if await self.guard.verify(listed, "start-up") is not None:
                upstream.block(self.guard.refusal())
                self._tools = [t for t in self._tools if t.name not in self.guard.mismatched]
        except BaseException as exc:
            await upstream.close()
            await self._release()
            if isinstance(exc, UpstreamFailed | BackendError):
                raise ModuleLoadError(f"mcp_proxy: {exc}") from None
            raise
        self.upstream = upstream

    async def shutdown(self) -> None:
        """Stop the child (stdin closed, then SIGTERM, then SIGKILL) or end the HTTP session."""
        if self.upstream is not None:
            await self.upstream.close()
        await self._release()

    def dynamic_tools(self) -> Sequence[DynamicTool]:
        return self._tools

    def _allowlisted(self, listed: list[mcp_types.Tool]) -> list[DynamicTool]:
        upstream = {tool.name: tool for tool in listed}
        missing = sorted(set(self.cfg.tools) - set(upstream))
        if missing:
            raise ModuleLoadError(
                f"mcp_proxy: the upstream has no tool {', '.join(map(repr, missing))}",
                fix="correct config.tools; the upstream offers: "
                + ", ".join(sorted(upstream)[:50]),
            )
        return [
            DynamicTool(
                name=name,
                mode=mode,
                description=upstream[name].description or "",
                parameters=upstream[name].input_schema or {"type": "object"},
                call=self._caller(name),
            )
            for name, mode in self.cfg.tools.items()
        ]

    def _caller(self, name: str) -> Any:
        async def call(arguments: dict[str, Any]) -> Any:
            assert self.upstream is not None
            try:
                result = await self.upstream.call(name, arguments)
            except BackendError:
                # A refused grant fails the call with the fix, whatever the client raised.
                if self.oauth is not None and self.oauth.expired_message:
                    raise BackendError(self.oauth.expired_message) from None
                raise
            return _for_agent(result, self.cfg.max_result_bytes)

        return call

    # -- credentials -------------------------------------------------------------------------

    async def _fingerprint(self) -> bytes:
        """A keyed digest of the current credential values, computed without a ``str`` copy."""
        mac = hmac.new(self._mac_key, digestmod=hashlib.sha256)
        for key in self._keys:
            async with self.credentials.use(key) as plain:
                view = plain.bytes_view
                mac.update(len(view).to_bytes(8, "big"))
                mac.update(view)
        return mac.digest()

    async def _connect(self) -> tuple[ClientTransport, bytes]:
        """A transport carrying the current credentials, and their fingerprint."""
        mac = hmac.new(self._mac_key, digestmod=hashlib.sha256)
        values: dict[str, str] = {}
        for key in self._keys:
            async with self.credentials.use(key) as plain:
                view = plain.bytes_view
                mac.update(len(view).to_bytes(8, "big"))
                mac.update(view)
                values[key] = plain.text()
        try:
            return self._transport(values), mac.digest()
        finally:
            values.clear()

    def _transport(self, values: dict[str, str]) -> ClientTransport:
        def fill(template: str) -> str:
            return CRED.sub(lambda match: values[match.group(1)], template)

        if self.cfg.url is not None:
            headers = {name: fill(value) for name, value in self.cfg.headers.items()}
            auth = None
            if self.oauth is not None:
                from scoped_mcp.oauth.bearer import OAuthBearer

                auth = OAuthBearer(self.oauth)
            return StreamableHttpTransport(
                self.cfg.url, headers=headers, auth=auth, httpx_client_factory=_http_client
            )
        assert self.cfg.command is not None
        files = self.runner.files({name: fill(text) for name, text in self.cfg.files.items()})
        try:

            def place(template: str) -> str:
                return FILE.sub(
                    lambda m: files.path(m.group(1), sandboxed=self.runner.sandboxed), template
                )

            cwd = str(self.cfg.cwd) if self.cfg.cwd else None
            command = [_executable(self.cfg.command), *map(place, self.cfg.args)]
            launch = self.runner.launch(command, files=files, cwd=cwd)
            env = {name: place(fill(value)) for name, value in self.cfg.env.items()}
            return ExactEnvStdio(
                launch.argv[0],
                launch.argv[1:],
                env=merged_env(env, launch.env),
                cwd=None if self.runner.sandboxed else cwd,
                stderr=self.cfg.stderr,
                stop_seconds=self.cfg.stop_timeout,
                label=self._label,
                # An upstream FastMCP server sends a result twice (text and structured content,
                # the text JSON-escaped again) in one line: that must get through for the size
                # check.
                max_line_bytes=4 * self.cfg.max_result_bytes + 1024 * 1024,
                pass_fds=launch.pass_fds,
                after_spawn=files.close,
            )
        except BaseException:
            files.close()
            raise


def _executable(command: str) -> str:
    """An absolute path for ``command``: bare names are looked up on scoped-mcp's own PATH."""
    if "/" in command:
        return command
    found = shutil.which(command)
    if found is None:
        raise BackendError(f"upstream command {command!r} not found on PATH")
    return found


def _http_client(
    headers: dict[str, str] | None = None,
    timeout: httpx2.Timeout | None = None,
    auth: httpx2.Auth | None = None,
    **_ignored: Any,
) -> httpx2.AsyncClient:
    """An HTTP client without ambient proxy settings or redirects, whatever the caller asks."""
    return httpx2.AsyncClient(
        headers=headers,
        timeout=timeout or httpx2.Timeout(30.0, read=300.0),
        auth=auth,
        follow_redirects=False,
        trust_env=False,
    )


def _for_agent(result: mcp_types.CallToolResult, limit: int) -> Any:
    """The upstream's result as plain data; an upstream error, or a result over ``limit`` bytes
    of JSON, becomes a ``BackendError``."""
    texts = [block.text for block in result.content if isinstance(block, mcp_types.TextContent)]
    if result.is_error:
        raise BackendError("upstream error: " + (" ".join(texts) or "no detail"))
    # The agent gets one copy: the structured content if there is one, else the blocks.
    size = len(
        pydantic_core.to_json(result.structured_content)
        if result.structured_content is not None
        else pydantic_core.to_json([block.model_dump(mode="json") for block in result.content])
    )
    if size > limit:
        raise BackendError(f"result too large ({size} bytes, limit {limit})")
    if result.structured_content is not None:
        wrapped = (result.meta or {}).get("fastmcp", {}).get("wrap_result") is True
        structured = result.structured_content
        # FastMCP servers wrap a non-object return as {"result": value}; hand on the value.
        return structured.get("result") if wrapped and set(structured) == {"result"} else structured
    if len(texts) == len(result.content):
        return texts[0] if len(texts) == 1 else texts
    return [
        block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content
    ]
