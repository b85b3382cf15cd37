"""One stdio upstream's launches: probed once, its network proxy for the module's lifetime, and
a fresh command line (with fresh credential files) for every child."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from scoped_mcp.modules.mcp_proxy.sandbox.config import NetworkAllow, SandboxConfig
from scoped_mcp.modules.mcp_proxy.sandbox.files import MemFiles
from scoped_mcp.modules.mcp_proxy.sandbox.launch import Launch, sandboxed, unsandboxed
from scoped_mcp.modules.mcp_proxy.sandbox.netproxy import FilterProxy
from scoped_mcp.modules.mcp_proxy.sandbox.probe import require_bwrap

_log = logging.getLogger(__name__)
OFF_WARNING = "sandbox: off: the upstream runs unconfined, with scoped-mcp's uid, files and network"


class Runner:
    """Builds each child's launch for one module; ``start`` before the first, ``close`` at stop."""

    def __init__(
        self, config: SandboxConfig | None, *, label: str, manifest_dir: object = None
    ) -> None:
        self.config = config
        self.label = label
        self.manifest_dir = manifest_dir
        self.bwrap: str | None = None
        self.proxy: FilterProxy | None = None

    @property
    def sandboxed(self) -> bool:
        return self.config is not None

    async def start(self) -> None:
        """Refuse (ModuleLoadError) when no sandbox can be built; start the network proxy."""
        if self.config is None:
            _log.warning(OFF_WARNING, extra={"proxy": self.label})
            return
        self.bwrap = require_bwrap(self.config.bwrap, label=self.label)
        if isinstance(self.config.network, NetworkAllow):
            self.proxy = FilterProxy(self.config.network.endpoints(), self.label)
            await self.proxy.start()

    async def close(self) -> None:
        if self.proxy is not None:
            await self.proxy.close()
            self.proxy = None

    def files(self, contents: Mapping[str, str]) -> MemFiles:
        return MemFiles(contents)

    def launch(self, command: list[str], *, files: MemFiles, cwd: str | None) -> Launch:
        if self.config is None:
            return unsandboxed(command, files=files)
        assert self.bwrap is not None, "Runner.start() first"
        socket: Path | None = self.proxy.path if self.proxy is not None else None
        return sandboxed(
            command,
            config=self.config,
            bwrap=self.bwrap,
            files=files,
            cwd=cwd,
            proxy_socket=socket,
            manifest_dir=self.manifest_dir,
        )
