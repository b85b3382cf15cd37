"""http_proxy: HTTP calls to the named services a manifest lists, and nowhere else.

``module`` holds the tools, ``config`` the manifest block and each service's fixed ``Target``,
``rules`` the path, query and header rules every request passes.
"""

from __future__ import annotations

from scoped_mcp.modules.http_proxy.module import HttpProxyModule

__all__ = ["HttpProxyModule"]
