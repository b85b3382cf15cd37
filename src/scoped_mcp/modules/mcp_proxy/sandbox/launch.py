"""The command line that starts one upstream child: bubblewrap around our launcher, or the
launcher alone with ``sandbox: off``.

Inside the sandbox: fresh ``/proc`` and ``/dev``, the system read-only (``mounts``), a private
size-bounded tmpfs ``/tmp`` with ``$HOME`` in it, the upstream's runtime and the listed paths,
its credential files under ``/run/scoped-mcp/files``, all namespaces unshared (user, PID, IPC,
UTS, network, cgroup), every capability dropped, a new session, and death with scoped-mcp.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scoped_mcp.errors import BackendError
from scoped_mcp.modules.mcp_proxy.sandbox.config import Limits, SandboxConfig
from scoped_mcp.modules.mcp_proxy.sandbox.files import SANDBOX_DIR, MemFiles
from scoped_mcp.modules.mcp_proxy.sandbox.mounts import argument_paths, runtime_of, system_binds

LAUNCHER = str(Path(__file__).with_name("launcher.py"))
INSIDE = "/run/scoped-mcp"
HOME = "/tmp/home"  # noqa: S108 - inside the sandbox's own private tmpfs
BRIDGE_PORT = 3128
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


@dataclass
class Launch:
    """What to spawn: argv, the environment additions, and the descriptors to pass."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    pass_fds: list[int] = field(default_factory=list)


def limit_args(limits: Limits) -> list[str]:
    values = {
        "memory": limits.memory_mb * 1024 * 1024,
        "files": limits.files,
        "processes": limits.processes,
    }
    if limits.cpu_s is not None:
        values["cpu"] = limits.cpu_s
    return [arg for name, n in values.items() for arg in ("--limit", f"{name}={n}")]


def unsandboxed(command: list[str], *, files: MemFiles) -> Launch:
    """``sandbox: off``: the command as it is (no limits), credential files as /proc/self/fd/N."""
    return Launch(list(command), pass_fds=list(files.fds.values()))


def sandboxed(
    command: list[str],
    *,
    config: SandboxConfig,
    bwrap: str,
    files: MemFiles,
    cwd: str | None,
    proxy_socket: Path | None,
    manifest_dir: object,
) -> Launch:
    """bubblewrap, our launcher inside it, then ``command``."""
    argv = [
        bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--hostname", "mcp-sandbox", "--proc", "/proc", "--dev", "/dev",
    ]  # fmt: skip
    for kind, top in system_binds():
        if kind == "symlink":
            argv += ["--symlink", os.readlink(top), top]
        else:
            argv += ["--ro-bind", top, top]
    tmp_bytes = str(config.limits.tmp_mb * 1024 * 1024)
    argv += ["--size", tmp_bytes, "--perms", "1777", "--tmpfs", "/tmp", "--dir", HOME]  # noqa: S108
    shown: list[str] = []
    interpreter = os.path.realpath(sys.executable)
    runtime = [
        *runtime_of(interpreter, manifest_dir=None),
        *runtime_of(command[0], manifest_dir=manifest_dir),
        *argument_paths(command[1:], manifest_dir=manifest_dir),
    ]
    for path in runtime:
        if str(path) not in shown:
            argv += ["--ro-bind", str(path), str(path)]
            shown.append(str(path))
    for path in config.read_paths:
        argv += ["--ro-bind", str(path), str(path)]
    for path in config.write_paths:
        argv += ["--bind", str(path), str(path)]
    argv += ["--dir", INSIDE, "--ro-bind", LAUNCHER, f"{INSIDE}/launch.py"]
    if files.fds:
        argv += ["--perms", "0700", "--dir", SANDBOX_DIR]
        for name, fd in files.fds.items():
            argv += ["--perms", "0400", "--ro-bind-data", str(fd), f"{SANDBOX_DIR}/{name}"]
    env = {"HOME": HOME}
    bridge: list[str] = []
    if proxy_socket is not None:
        argv += ["--bind", str(proxy_socket), f"{INSIDE}/proxy.sock"]
        bridge = ["--bridge", f"{BRIDGE_PORT}:{INSIDE}/proxy.sock"]
        env.update(dict.fromkeys(PROXY_VARS, f"http://127.0.0.1:{BRIDGE_PORT}"))
        env.update({"NO_PROXY": "", "no_proxy": ""})
    workdir = cwd or HOME
    if cwd is not None and not _visible(Path(os.path.realpath(cwd)), config):
        raise BackendError(
            f"cwd {cwd!r} is not visible in the sandbox: list it in read_paths or write_paths"
        )
    argv += ["--chdir", workdir, "--", interpreter, "-I", "-S", f"{INSIDE}/launch.py"]
    argv += [*limit_args(config.limits), *bridge, "--", *command]
    return Launch(argv, env=env, pass_fds=list(files.fds.values()))


def _visible(path: Path, config: SandboxConfig) -> bool:
    return any(p == path or p in path.parents for p in [*config.read_paths, *config.write_paths])


def merged_env(configured: Mapping[str, str], added: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: the sandbox's additions, then the manifest's own values.

    The proxy variables always come from the sandbox: no other proxy is reachable from it.
    """
    merged = {**added, **configured}
    for name in (*PROXY_VARS, "NO_PROXY", "no_proxy"):
        if name in added:
            merged[name] = added[name]
    return merged
