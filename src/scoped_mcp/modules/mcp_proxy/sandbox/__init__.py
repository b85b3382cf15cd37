"""The bubblewrap sandbox around a stdio upstream, and credential files for it.

``config`` is the ``sandbox:`` block, ``probe`` checks once that bwrap works, ``mounts`` decides
what is visible, ``launch`` builds the command line, ``launcher`` runs first inside (limits,
network bridge), ``netproxy`` is the filtering proxy behind ``network.allow`` and
``allowlist`` its rules, ``files`` the memfd-backed credential files, ``guard`` the paths never
shown by accident.
"""

from __future__ import annotations

from scoped_mcp.modules.mcp_proxy.sandbox.config import SandboxConfig, parse_sandbox

__all__ = ["SandboxConfig", "parse_sandbox"]
