"""Bitwarden / Vaultwarden backend: ``bitwarden:<item-id-or-name>#<field>`` through the ``bw`` CLI.

An item is read whole with one ``bw`` command (``bw get item ID`` for an id, ``bw list items
--search NAME`` filtered to the exact name otherwise), so every key naming the same item is served
by one read. Fields:

    password  username  uri   the login's password, username and first URI
    notes                     the item's notes
    <name>                    a custom field of that exact name (text or hidden)

``totp`` is refused: a one-time code is stale within 30 seconds, and the TOTP seed would let its
holder mint codes forever; neither is a credential to hand a module. Values are static: the broker
re-reads them after ``credentials.ttl``, and this backend runs ``bw sync`` first when its last sync
is older than ``credentials.bitwarden.sync_interval``, so a password changed in Vaultwarden reaches
the agent without a restart. Vaultwarden has no Secrets Manager; ``bws`` is not used.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from scoped_mcp.credentials.backends.bitwarden.cli import BwCli, locked_error
from scoped_mcp.credentials.backends.bitwarden.config import BitwardenSpec
from scoped_mcp.credentials.backends.interface import (
    BackendContext,
    Fetched,
    Finding,
    SecretBackend,
)
from scoped_mcp.credentials.refs import SecretRef
from scoped_mcp.errors import BackendMisconfigured, CredentialError, SecretNotFound

if TYPE_CHECKING:
    from pydantic import BaseModel

_log = logging.getLogger(__name__)
_ITEM_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
LOGIN_FIELDS = ("password", "username", "uri")
REFUSED_FIELDS = {
    "totp": "TOTP codes and seeds are never served (a code expires in 30 s; a seed mints codes "
    "forever)"
}


def item_values(item: Mapping[str, Any]) -> tuple[dict[str | None, str], set[str]]:
    """The servable fields of a bw item, and the custom field names that appear more than once."""
    values: dict[str | None, str] = {}
    login = item.get("login") if isinstance(item.get("login"), dict) else {}
    assert isinstance(login, dict)
    for name in ("password", "username"):
        if isinstance(login.get(name), str):
            values[name] = login[name]
    uris = login.get("uris")
    first = uris[0] if isinstance(uris, list) and uris else None
    if isinstance(first, dict) and isinstance(first.get("uri"), str):
        values["uri"] = first["uri"]
    if isinstance(item.get("notes"), str):
        values["notes"] = item["notes"]
    seen: set[str] = set()
    duplicates: set[str] = set()
    for custom in item.get("fields") or []:
        if not isinstance(custom, dict) or not isinstance(custom.get("name"), str):
            continue
        name = custom["name"]
        if name in LOGIN_FIELDS or name == "notes" or name in REFUSED_FIELDS:
            continue  # the built-in meaning wins; a custom field cannot shadow it
        if name in seen:
            duplicates.add(name)
        seen.add(name)
        if isinstance(custom.get("value"), str):
            values[name] = custom["value"]
    for name in duplicates:
        values.pop(name, None)
    return values, duplicates


class BitwardenBackend(SecretBackend):
    """Reads Bitwarden/Vaultwarden items through the official CLI; the session key stays sealed."""

    schemes: ClassVar[tuple[str, ...]] = ("bitwarden",)
    config_block: ClassVar[str | None] = "bitwarden"
    config_model: ClassVar[type[BaseModel] | None] = BitwardenSpec
    field_required: ClassVar[bool] = True
    source_field: ClassVar[str | None] = "item"
    source_needs: ClassVar[str] = (
        "source: bitwarden needs bitwarden.item (the item whose custom fields are the keys)"
    )

    @classmethod
    def from_manifest(cls, settings: BaseModel | None, context: BackendContext) -> BitwardenBackend:
        """The backend for ``credentials.bitwarden`` (bw's defaults when there is no block)."""
        spec = cls.settings_or_default(settings)
        assert isinstance(spec, BitwardenSpec)
        return cls(spec, context.environ)

    def __init__(
        self,
        spec: BitwardenSpec,
        environ: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spec = spec
        self._cli = BwCli(spec, environ)
        self._clock = clock
        self._synced_at: float | None = None

    def __repr__(self) -> str:
        return f"BitwardenBackend({self._cli!r})"

    def fetch(self, ref: SecretRef) -> Fetched:
        self._refuse_field(ref)
        self._maybe_sync()
        item = self._item(ref.path)
        values, duplicates = item_values(item)
        if ref.field in duplicates:
            raise BackendMisconfigured(
                f"Bitwarden item {ref.path!r} has more than one custom field {ref.field!r}",
                fix="rename or remove the extra field so the name is unique",
            )
        if ref.field not in values:
            raise SecretNotFound(
                f"Bitwarden item {ref.path!r} has no field {ref.field!r}",
                fix=f"add a custom field named {ref.field!r} to the item (or use password, "
                "username, uri or notes), then bw sync",
            )
        return Fetched(values)

    def check(self, ref: SecretRef) -> Finding:
        try:
            self._refuse_field(ref)
            state, facts = self._cli.status()
            if state != "unlocked":
                error = locked_error(state, self._cli.session.given, self._cli.session.where)
                return Finding("denied", error.message, error.fix, {"vault": state, **facts})
            self.fetch(ref)
        except CredentialError as exc:
            return Finding.failed(exc)
        return Finding("ok", f"item {ref.path!r} field {ref.field!r} via bw", None, facts)

    def describe(self) -> Finding:
        """The vault's state as ``bw status`` reports it (for ``creds check``'s backend line)."""
        try:
            state, facts = self._cli.status()
        except CredentialError as exc:
            return Finding.failed(exc)
        if state != "unlocked":
            error = locked_error(state, self._cli.session.given, self._cli.session.where)
            return Finding("denied", error.message, error.fix, {"vault": state, **facts})
        return Finding("ok", "vault unlocked", None, {"vault": state, **facts})

    @staticmethod
    def _refuse_field(ref: SecretRef) -> None:
        if ref.field is None or ref.field in REFUSED_FIELDS:
            reason = REFUSED_FIELDS.get(ref.field or "", "a field is required")
            raise BackendMisconfigured(
                f"bitwarden:{ref.path}#{ref.field}: {reason}",
                fix="name password, username, uri, notes or a custom field after '#'",
            )

    def _maybe_sync(self) -> None:
        interval = self._spec.sync_interval
        now = self._clock()
        if not interval or (self._synced_at is not None and now - self._synced_at < interval):
            return
        done = self._cli.run("sync")
        if done.returncode == 0:
            self._synced_at = now
        else:  # bw still serves its local copy; the read below says if the vault is locked
            _log.warning("bw sync failed; reading bw's local copy", extra={"exit": done.returncode})

    def _item(self, item: str) -> dict[str, Any]:
        if _ITEM_ID.fullmatch(item):
            found = self._cli.json_of("get", "item", item)
            if not isinstance(found, dict):
                raise SecretNotFound(f"no Bitwarden item {item!r}")
            return found
        listed = self._cli.json_of("list", "items", "--search", item)
        exact = [i for i in listed if isinstance(i, dict) and i.get("name") == item]
        if not exact:
            raise SecretNotFound(
                f"no Bitwarden item named exactly {item!r}",
                fix="check the name (bw list items --search NAME), or use the item's id; "
                "then bw sync",
            )
        if len(exact) > 1:
            ids = ", ".join(str(i.get("id")) for i in exact)
            raise BackendMisconfigured(
                f"{len(exact)} Bitwarden items are named {item!r}",
                fix=f"refer to one by its id ({ids})",
            )
        return exact[0]
