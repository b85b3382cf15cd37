"""What the sandbox shows: the system read-only, the upstream's own runtime, the listed paths.

System directories are bound whole except ``/etc``, of which only the files programs commonly
need to run and to verify TLS are shown (no shadow, no ssh keys, no ``/etc/scoped-mcp``). The
upstream's executable is shown with its runtime: a virtualenv it lives in, the interpreter
prefix that virtualenv points to, and the ``<prefix>`` of a ``<prefix>/bin/<exe>`` outside the
system directories. Absolute arguments that exist (a script, a config directory) are shown
read-only. Everything passes the same guard as ``read_paths``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from scoped_mcp.modules.mcp_proxy.sandbox.guard import refuse_protected

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_ENTRIES = (
    "alternatives", "ca-certificates", "ca-certificates.conf", "crypto-policies", "ssl", "pki",
    "hosts", "host.conf", "nsswitch.conf", "gai.conf", "resolv.conf", "localtime", "timezone",
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "mime.types", "os-release", "debian_version",
    "passwd", "group", "protocols", "services", "locale.alias", "locale.conf",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Bind:
    """One path shown at the same place inside the sandbox."""

    path: str
    writable: bool = False


def system_binds() -> list[tuple[str, str]]:
    """``(kind, path)`` for the system: ``symlink`` keeps merged-/usr links, ``ro`` binds."""
    found: list[tuple[str, str]] = []
    for top in SYSTEM_DIRS:
        if os.path.islink(top):
            found.append(("symlink", top))
        elif os.path.isdir(top):
            found.append(("ro", top))
    for name in ETC_ENTRIES:
        path = f"/etc/{name}"
        if os.path.lexists(path):
            found.append(("ro", path))
    return found


def _system(path: Path) -> bool:
    return any(path == Path(top) or Path(top) in path.parents for top in SYSTEM_DIRS)


def runtime_of(executable: str, *, manifest_dir: object) -> list[Path]:
    """The paths ``executable`` needs to run, outside the system directories."""
    given = Path(executable)
    found: list[Path] = []
    venv = given.parent.parent
    if (venv / "pyvenv.cfg").is_file():
        found.append(venv)
        for line in (venv / "pyvenv.cfg").read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                found.append(Path(os.path.realpath(value.strip())).parent)
    real = Path(os.path.realpath(given))
    if not _system(real):
        found.append(real.parent.parent if real.parent.name == "bin" else real)
    if not _system(given) and given not in found and not any(p in given.parents for p in found):
        found.append(given)
    shown = []
    for path in found:
        if _system(path) or path in shown:
            continue
        refuse_protected(path, what=f"the upstream's runtime {str(path)!r}", manifest_dir=None)
        shown.append(path)
    return shown


def argument_paths(args: list[str], *, manifest_dir: object) -> list[Path]:
    """Absolute arguments naming existing files or directories, to show read-only."""
    shown: list[Path] = []
    for arg in args:
        if not arg.startswith("/") or not os.path.exists(arg):
            continue
        real = Path(os.path.realpath(arg))
        if _system(real):
            continue
        refuse_protected(real, what=f"the argument {arg!r}", manifest_dir=manifest_dir)
        shown.append(real)
    return shown
