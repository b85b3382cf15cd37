"""What the Vault backend logs in with: its sealed inputs, and AppRole's response wrapping.

``LoginInputs`` holds the token, role-id and secret-id named in ``credentials.vault``: a value
named by ``*_env`` is read once at start and sealed, so the environment is not kept; a ``*_file``
is read when needed, and a token or secret-id file must be private to its owner. ``wrapping_info``
looks a response-wrapping token up without consuming it; ``unwrap`` spends it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scoped_mcp.credentials.backends.file import privacy_problems
from scoped_mcp.credentials.backends.vault.config import VaultSpec
from scoped_mcp.credentials.backends.vault.http import Connection
from scoped_mcp.credentials.lease import SealedSecret, Sealer
from scoped_mcp.errors import AccessDenied, BackendMisconfigured, InsecureSource

MAX_INPUT_BYTES = 64 * 1024
KINDS = ("token", "role_id", "secret_id")


class LoginInputs:
    """The login inputs of one Vault backend, sealed; never shown in a repr."""

    def __init__(self, spec: VaultSpec, environ: Mapping[str, str], sealer: Sealer) -> None:
        self._spec = spec
        self._sealer = sealer
        self._sealed: dict[str, SealedSecret] = {}
        self._unset: dict[str, str] = {}
        for kind in KINDS:
            var = getattr(spec, f"{kind}_env")
            if var and environ.get(var):
                self._sealed[kind] = sealer.seal(environ[var], context=kind.encode())
            elif var:
                self._unset[kind] = var

    def __repr__(self) -> str:
        return f"LoginInputs(sealed={sorted(self._sealed)})"

    def read(self, kind: str) -> str:
        """A login input (token, role_id, secret_id) from its sealed env value or its file."""
        sealed = self._sealed.get(kind)
        if sealed is not None:
            with self._sealer.open(sealed, context=kind.encode()) as plain:
                return plain.text()
        if kind in self._unset:
            var = self._unset[kind]
            raise BackendMisconfigured(
                f"credentials.vault.{kind}_env names {var}, which is not set",
                fix=f"set {var} in the env block of the MCP client's configuration",
            )
        path = getattr(self._spec, f"{kind}_file")
        if path is None:
            raise BackendMisconfigured(
                f"credentials.vault: auth: {self._spec.auth} needs {kind}_env or {kind}_file",
                fix=f"add credentials.vault.{kind}_file: /run/secrets/vault-{kind}",
            )
        return read_file(Path(path), kind)

    def drop(self, kind: str | None = None) -> None:
        """Forget one sealed input (the secret-id once spent), or all of them."""
        if kind is None:
            self._sealed.clear()
        else:
            self._sealed.pop(kind, None)

    def source_name(self, kind: str) -> str:
        """Where an input comes from, for messages: ``$VAR`` or the file's path."""
        var = getattr(self._spec, f"{kind}_env")
        return f"${var}" if var else str(getattr(self._spec, f"{kind}_file"))


def wrapping_info(conn: Connection, value: str) -> dict[str, Any] | None:
    """What sys/wrapping/lookup says of ``value`` (it does not consume the token), or None."""
    try:
        answer = conn.request(
            "POST", "sys/wrapping/lookup", token="", capability="update", json={"token": value}
        )
    except BackendMisconfigured:  # HTTP 400: not a (live) wrapping token
        return None
    data = (answer or {}).get("data") or {}
    return dict(data) if data.get("creation_path") else None


def unwrap(conn: Connection, wrapping_token: str) -> str:
    """The secret-id inside a response-wrapping token (which this spends)."""
    try:
        answer = conn.request(
            "POST", "sys/wrapping/unwrap", token=wrapping_token, capability="update"
        )
    except (AccessDenied, BackendMisconfigured):
        raise AccessDenied(
            "the response-wrapped secret-id could not be unwrapped: it expired or was "
            "already unwrapped (if not by you, treat it as stolen)",
            fix="issue a new wrapped secret-id: bao write -wrap-ttl=5m -f "
            "auth/approle/role/<role>/secret-id",
        ) from None
    return str(answer["data"]["secret_id"])


def read_file(path: Path, kind: str) -> str:
    """A login input from its file: text, not empty, private unless it is the role-id."""
    try:
        with path.open("rb") as handle:
            if kind != "role_id":  # the role-id names a role; the token and secret-id are secrets
                _refuse_shared(os.fstat(handle.fileno()), path, kind)
            raw = handle.read(MAX_INPUT_BYTES)
    except FileNotFoundError:
        raise BackendMisconfigured(
            f"credentials.vault.{kind}_file: {path} does not exist",
            fix=f"write the {kind} to {path} (mode 600)",
        ) from None
    except OSError:
        raise BackendMisconfigured(
            f"credentials.vault.{kind}_file: {path} cannot be read by this user"
        ) from None
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BackendMisconfigured(f"credentials.vault.{kind}_file: {path} is not text") from None
    if not text:
        raise BackendMisconfigured(f"credentials.vault.{kind}_file: {path} is empty")
    return text


def _refuse_shared(info: os.stat_result, path: Path, kind: str) -> None:
    problems, fixes = privacy_problems(info, str(path))
    if problems:
        raise InsecureSource(
            f"credentials.vault.{kind}_file: {path}: {'; '.join(problems)}", fix="; ".join(fixes)
        )
