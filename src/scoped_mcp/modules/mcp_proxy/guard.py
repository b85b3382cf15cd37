"""The pin guard: compares what an upstream lists with the operator's pins, and acts on a change.

Invariant: once any allowlisted tool's definition differs from its pin, the module stays
quarantined for the life of the process. Each changed tool gets a ``tool_pin_mismatch`` audit
record and is withdrawn from the server (or never registered); the upstream (see ``upstream``)
is stopped and never started again, so it receives no fresh credential until the operator
re-pins and restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import mcp_types

from scoped_mcp.audit import records
from scoped_mcp.errors import ModuleLoadError
from scoped_mcp.modules.mcp_proxy import pins
from scoped_mcp.tool_control import ToolControl

_log = logging.getLogger(__name__)
PinPolicy = Literal["required", "warn"]


class PinGuard:
    """One module's pins, checked at start-up, before each restart and on ``list_changed``."""

    def __init__(
        self,
        *,
        key: str,
        allowlist: Sequence[str],
        policy: PinPolicy,
        lock_file: Path | None,
        manifest: Path | None,
        control: ToolControl | None,
    ) -> None:
        self.key = key
        self._allowlist = list(allowlist)
        self._policy = policy
        self._lock_file = lock_file
        self._manifest = manifest
        self._control = control
        self._pins: Mapping[str, pins.Pin] | None = None
        self.mismatched: set[str] = set()

    @property
    def fix(self) -> str:
        manifest = str(self._manifest) if self._manifest else "M"
        return f"scoped-mcp pin --manifest {manifest} --module {self.key}"

    def load(self) -> None:
        """Read this module's pins; warn (``pins: warn``) or refuse (``required``) without them.

        A malformed lock file always stops start-up, naming the file and line.
        """
        try:
            found = pins.read(self._lock_file) if self._lock_file is not None else None
        except pins.PinFileError as exc:
            manifest = str(self._manifest) if self._manifest else "M"
            run = f"scoped-mcp pin --manifest {manifest}"
            exc.fix = f"correct that line, or delete the file and run `{run}`"
            raise
        entry = None if found is None else found.get(self.key)
        if entry is None:
            where = "no pin file" if found is None else "no pins for this module in the pin file"
            self._missing(f"mcp_proxy {self.key}: {where} ({self._lock_file or 'none'})")
            return
        unpinned = sorted(set(self._allowlist) - set(entry))
        if unpinned:
            self._missing(f"mcp_proxy {self.key}: no pin for {', '.join(map(repr, unpinned))}")
        self._pins = entry

    def _missing(self, what: str) -> None:
        if self._policy == "required":
            raise ModuleLoadError(
                f"{what}; this module has pins: required",
                fix=f"run `{self.fix}`, review the descriptions it shows, commit the pin file",
            )
        _log.warning(
            "upstream tools are not pinned",
            extra={"proxy": self.key, "detail": what, "fix": self.fix},
        )

    def refusal(self) -> str:
        """What a call to a quarantined module's tool is told."""
        return (
            f"upstream tools of {self.key} changed since they were pinned; it is stopped until "
            f"the operator reviews them and runs `scoped-mcp pin --module {self.key}`"
        )

    async def verify(self, listed: Sequence[mcp_types.Tool], when: str) -> str | None:
        """``None`` when every pinned allowlisted tool matches; else quarantine and the refusal.

        Tools without a pin are not compared (``load`` warned about them or refused).
        """
        if self._pins is None:
            return None if not self.mismatched else self.refusal()
        upstream = {tool.name: tool for tool in listed}
        changed: dict[str, tuple[str, str | None]] = {}
        for name in self._allowlist:
            pin = self._pins.get(name)
            if pin is None or name in self.mismatched:
                continue
            tool = upstream.get(name)
            now = pins.digest(tool) if tool is not None else None
            if now != pin.digest:
                changed[name] = (pin.digest, now)
        if changed:
            await self._quarantine(changed, when)
        return self.refusal() if self.mismatched else None

    async def _quarantine(self, changed: Mapping[str, tuple[str, str | None]], when: str) -> None:
        self.mismatched.update(changed)
        withdrawn = await self._control.withdraw(list(changed)) if self._control else []
        for name, (pinned, now) in sorted(changed.items()):
            action = "withdrawn" if name in withdrawn else "not registered"
            if self._control is not None:
                self._control.audit(
                    records.tool_pin_mismatch(
                        module=self.key,
                        tool=name,
                        pinned=pinned,
                        listed=now,
                        action=action,
                        when=when,
                    )
                )
            _log.warning(
                "upstream tool differs from its pin",
                extra={
                    "proxy": self.key,
                    "tool": name,
                    "pinned_digest": pinned,
                    "listed_digest": now,
                    "when": when,
                    "fix": self.fix,
                },
            )
