"""Running the official Bitwarden CLI (``bw``) for the bitwarden backend.

Invariants:

- The session key reaches ``bw`` only through its environment (``BW_SESSION``), never its command
  line, where any local user could read it from ``/proc``. It is sealed here between runs.
- The child's environment is minimal and explicit (``child_env``): nothing else of the server's
  environment, which may hold other secrets, is passed on.
- ``bw``'s output is never quoted in an error or a log line: its stdout is vault data, and its
  stderr is classified into a fixed vocabulary (``classify``) in this one place.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from scoped_mcp.credentials.backends.bitwarden.config import BitwardenSpec
from scoped_mcp.credentials.lease import SealedSecret, Sealer
from scoped_mcp.errors import (
    AccessDenied,
    BackendMisconfigured,
    BackendUnavailable,
    CredentialError,
    InsecureSource,
    SecretNotFound,
)

VaultStatus = Literal["unauthenticated", "locked", "unlocked"]
Failure = Literal["not_found", "ambiguous", "locked", "unauthenticated", "other"]
PASSED_THROUGH = ("HOME", "PATH", "XDG_CONFIG_HOME", "NODE_EXTRA_CA_CERTS")
"""Server variables ``bw`` may need (where its data is, how to find node, a private CA)."""
MAX_SESSION_FILE_BYTES = 4096
MAX_OUTPUT_BYTES = 32 * 1024 * 1024

LOGIN_FIX = (
    "log bw in as the user that runs scoped-mcp: bw config server https://<your-vaultwarden> "
    "(once), bw login, then export BW_SESSION=$(bw unlock --raw)"
)
UNLOCK_FIX = (
    "unlock the vault and give the session to scoped-mcp: export BW_SESSION=$(bw unlock --raw) "
    "in the environment that starts it (or write it to credentials.bitwarden.session_file)"
)


def classify(stderr: bytes) -> Failure:
    """What a failed bw command's error text means; the text itself is dropped."""
    text = stderr.decode("utf-8", "replace").lower()
    if "not found" in text:
        return "not_found"
    if "more than one result" in text:
        return "ambiguous"
    if "not logged in" in text:
        return "unauthenticated"
    if "locked" in text or "invalid master password" in text or "session" in text:
        return "locked"
    return "other"


def locked_error(status: VaultStatus, session_given: bool, where: str) -> CredentialError:
    """The error for a vault that is not unlocked, with the command that fixes it."""
    if status == "unauthenticated":
        return AccessDenied("bw is not logged in (bw status: unauthenticated)", fix=LOGIN_FIX)
    detail = (
        "the session key in " + where + " is not valid" if session_given else where + " is empty"
    )
    return AccessDenied(
        f"the Bitwarden vault is locked (bw status: locked): {detail}", fix=UNLOCK_FIX
    )


class SessionKey:
    """The ``bw`` session key: read from ``session_env`` or ``session_file``, kept sealed."""

    def __init__(self, spec: BitwardenSpec, environ: Mapping[str, str]) -> None:
        self._spec = spec
        self._environ = environ
        self._sealer = Sealer()
        self._sealed: SealedSecret | None = None
        self._loaded = False

    def __repr__(self) -> str:
        return f"SessionKey(source={self.where!r})"

    @property
    def where(self) -> str:
        """Where the session key comes from, for messages."""
        if self._spec.session_file is not None:
            return str(self._spec.session_file)
        return f"${self._spec.session_env}" if self._spec.session_env else "(no session source)"

    @property
    def given(self) -> bool:
        """Whether a non-empty session key was found."""
        self._load()
        return self._sealed is not None

    def reload(self) -> bool:
        """Read the source again (after bw said "locked"); True if a session key is present."""
        self._loaded = False
        return self.given

    def into(self, env: dict[str, str]) -> None:
        """Put the session key into a child environment (as BW_SESSION), if there is one."""
        self._load()
        if self._sealed is not None:
            with self._sealer.open(self._sealed, context=b"bw-session") as plain:
                env["BW_SESSION"] = plain.text()

    def _load(self) -> None:
        if self._loaded:
            return
        value = self._read_file() if self._spec.session_file else self._read_env()
        self._sealed = self._sealer.seal(value, context=b"bw-session") if value else None
        self._loaded = True

    def _read_env(self) -> str:
        name = self._spec.session_env
        return self._environ.get(name, "").strip() if name else ""

    def _read_file(self) -> str:
        path = self._spec.session_file
        assert path is not None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise BackendMisconfigured(
                f"session file {path} cannot be opened ({os.strerror(exc.errno or 0)})"
            ) from None
        try:
            info = os.fstat(fd)
            if info.st_uid != os.geteuid() or info.st_mode & 0o077:
                raise InsecureSource(
                    f"session file {path} is readable by others or not ours",
                    fix=f"chown {os.geteuid()} {path} && chmod 600 {path}",
                )
            return os.read(fd, MAX_SESSION_FILE_BYTES).decode("utf-8", "replace").strip()
        finally:
            os.close(fd)


class BwCli:
    """One ``bw`` executable, run one command at a time with a minimal environment."""

    def __init__(self, spec: BitwardenSpec, environ: Mapping[str, str]) -> None:
        self._spec = spec
        self._environ = environ
        self.session = SessionKey(spec, environ)
        self._lock = threading.Lock()
        self._executable: str | None = None

    def __repr__(self) -> str:
        return f"BwCli(bw={self._spec.bw_path!r}, session={self.session.where!r})"

    def executable(self) -> str:
        """The resolved path of bw; ``BackendMisconfigured`` with the install hint if absent."""
        if self._executable is None:
            given = os.path.expanduser(self._spec.bw_path)
            if "/" in given:
                found = given if os.access(given, os.X_OK) else None
            else:
                found = shutil.which(given, path=self._environ.get("PATH", os.defpath))
            if found is None:
                raise BackendMisconfigured(
                    f"the Bitwarden CLI {self._spec.bw_path!r} was not found or is not executable",
                    fix="install it (npm install -g @bitwarden/cli, or the standalone bw binary) "
                    "or set credentials.bitwarden.bw_path",
                )
            self._executable = found
        return self._executable

    def child_env(self, *, with_session: bool) -> dict[str, str]:
        """The whole environment bw gets: a few settings, and BW_SESSION when asked for."""
        env = {name: self._environ[name] for name in PASSED_THROUGH if name in self._environ}
        env.setdefault("PATH", os.defpath)
        env["LANG"] = "C.UTF-8"
        env["BW_NOINTERACTION"] = "true"
        appdata = self._spec.appdata_dir or self._environ.get("BITWARDENCLI_APPDATA_DIR")
        if appdata:
            env["BITWARDENCLI_APPDATA_DIR"] = str(Path(appdata))
        if with_session:
            self.session.into(env)
        return env

    def run(self, *args: str, with_session: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run ``bw --nointeraction ARGS``; the result's output must never reach a message."""
        command = [self.executable(), "--nointeraction", *args]
        with self._lock:
            try:
                done = subprocess.run(  # noqa: S603 - fixed executable, arguments are not secret
                    command,
                    env=self.child_env(with_session=with_session),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=self._spec.timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise BackendUnavailable(
                    f"bw {args[0]} did not answer within {self._spec.timeout:g} s",
                    fix="check that the Vaultwarden server is reachable, or raise "
                    "credentials.bitwarden.timeout",
                ) from None
            except OSError as exc:
                raise BackendMisconfigured(
                    f"bw cannot be started ({os.strerror(exc.errno or 0)})",
                    fix="check credentials.bitwarden.bw_path",
                ) from None
        if len(done.stdout) > MAX_OUTPUT_BYTES:
            raise BackendUnavailable(f"bw {args[0]} answered with more than 32 MiB")
        return done

    def status(self) -> tuple[VaultStatus, dict[str, Any]]:
        """``bw status``: the vault's state and the harmless facts (server URL, last sync)."""
        done = self.run("status")
        try:
            data = json.loads(done.stdout)
            state = data["status"]
        except (ValueError, KeyError, TypeError):
            raise BackendUnavailable(
                f"bw status gave no readable answer (exit {done.returncode})",
                fix="run 'bw status' as the user that runs scoped-mcp",
            ) from None
        if state not in ("unauthenticated", "locked", "unlocked"):
            raise BackendUnavailable(f"bw status reported an unknown state {str(state)[:20]!r}")
        facts = {"server_url": data.get("serverUrl"), "last_sync": data.get("lastSync")}
        return state, {k: v for k, v in facts.items() if isinstance(v, str)}

    def json_of(self, *args: str) -> Any:
        """Run a bw command that prints JSON; map every failure to a ``CredentialError``."""
        done = self.run(*args)
        if done.returncode != 0:
            failure = classify(done.stderr)
            if failure == "locked" and self.session.reload():
                done = self.run(*args)  # the session file may have been refreshed meanwhile
                failure = classify(done.stderr) if done.returncode != 0 else failure
            if done.returncode != 0:
                raise self._error(failure, args, done.returncode)
        try:
            return json.loads(done.stdout)
        except ValueError:
            raise BackendUnavailable(f"bw {args[0]} {args[1]} did not print JSON") from None

    def _error(self, failure: Failure, args: tuple[str, ...], code: int) -> CredentialError:
        if failure == "not_found":
            return SecretNotFound(
                f"no Bitwarden item {args[-1]!r}",
                fix="check the item's id or exact name (bw list items --search NAME), then bw sync",
            )
        if failure == "ambiguous":
            return BackendMisconfigured(
                f"more than one Bitwarden item matches {args[-1]!r}", fix="refer to it by its id"
            )
        try:  # locked, logged out, or unknown: bw status says which
            state, _ = self.status()
        except CredentialError:
            state = "unlocked"
        if state != "unlocked":
            return locked_error(state, self.session.given, self.session.where)
        return BackendUnavailable(
            f"bw {args[0]} failed (exit {code})",
            fix="run the same bw command by hand as the user that runs scoped-mcp",
        )
