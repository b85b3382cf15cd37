"""Which rule holds a tool: the first whose tool globs, modules or mode match it."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from scoped_mcp.approvals.config import ApprovalsSpec, Approvers, Rule


@dataclass(frozen=True, slots=True)
class EffectiveRule:
    """A rule with the block's defaults filled in."""

    index: int
    wait: float
    lifetime: float
    notify: tuple[str, ...]
    approvers: Approvers


def selects(rule: Rule, *, module: str, tool: str, mode: str) -> bool:
    """Whether ``rule`` selects tool ``tool`` (``{module}_{tool}``) of ``module`` in ``mode``."""
    if rule.mode is not None and rule.mode == mode:
        return True
    if module in rule.modules:
        return True
    return any(fnmatchcase(tool, glob) for glob in rule.tools)


class Rules:
    """The rules of one manifest, resolved once per tool name."""

    def __init__(self, spec: ApprovalsSpec) -> None:
        self._spec = spec
        self._cache: dict[tuple[str, str, str], EffectiveRule | None] = {}

    def match(self, *, module: str, tool: str, mode: str) -> EffectiveRule | None:
        """The rule holding this tool, or None: the tool runs as if there were no approvals."""
        key = (module, tool, mode)
        if key not in self._cache:
            self._cache[key] = self._find(module, tool, mode)
        return self._cache[key]

    def _find(self, module: str, tool: str, mode: str) -> EffectiveRule | None:
        spec = self._spec
        for index, rule in enumerate(spec.rules):
            if selects(rule, module=module, tool=tool, mode=mode):
                notify = rule.notify if rule.notify is not None else spec.channels.configured()
                return EffectiveRule(
                    index=index,
                    wait=spec.wait if rule.wait is None else rule.wait,
                    lifetime=spec.lifetime if rule.lifetime is None else rule.lifetime,
                    notify=tuple(sorted({"cli", *notify})),
                    approvers=rule.approvers or spec.approvers,
                )
        return None
