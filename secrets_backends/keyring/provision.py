#!/usr/bin/env python3
"""Store scoped-mcp keys in an OS keyring: one entry per key, username = the key's name.

    provision.py SERVICE KEY [KEY ...] [--backend CLASS]

reads one value per KEY from standard input (a hidden prompt on a terminal, else one line per key)
and stores it under SERVICE (e.g. ``scoped-mcp/notifier``, what ``credentials.keyring.service``
names). The keyring is ``--backend`` (a class such as ``keyring.backends.SecretService.Keyring``)
or keyring's own choice (``PYTHON_KEYRING_BACKEND``, ``keyringrc.cfg``); a backend scoped-mcp
would refuse is refused here too. Run it again at will: an entry that already holds the value is
not rewritten, and a keyring kept in a file is left readable by its owner only. Values are never
printed. Needs the keyring package (``pip install 'scoped-mcp[keyring]'``).
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import os
import stat
import sys
from typing import Any

import keyring

# The backends scoped-mcp refuses to read from: they prompt on a terminal, or store nothing.
REFUSED = {
    "keyrings.alt.file.EncryptedKeyring": "prompts for a password on the terminal",
    "keyring.backends.fail.Keyring": "has no usable keyring (install one, or choose a backend)",
    "keyring.backends.null.Keyring": "is the null keyring, which stores nothing",
}


class Refused(Exception):
    """A reason to stop before storing anything; the message holds no value."""


def qualname(obj: Any) -> str:
    """The fully qualified class name of a keyring backend, as scoped-mcp names it."""
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def choose(backend: str | None) -> Any:
    """The keyring backend to store into: the named class, or keyring's configured default."""
    if backend in REFUSED:
        raise Refused(f"keyring backend {backend} {REFUSED[backend]}")
    if backend:
        module_name, _, class_name = backend.rpartition(".")
        try:
            chosen = getattr(importlib.import_module(module_name), class_name)()
        except (ImportError, AttributeError, ValueError):
            raise Refused(f"keyring backend {backend!r} cannot be loaded") from None
    else:
        try:
            chosen = keyring.get_keyring()
        except Exception as exc:  # noqa: BLE001 - keyring's configuration can raise anything
            kind = type(exc).__name__
            raise Refused(f"keyring's configured backend cannot be loaded ({kind})") from None
    name = qualname(chosen)
    if name in REFUSED:
        raise Refused(f"keyring backend {name} {REFUSED[name]}")
    return chosen


def read_values(keys: list[str]) -> dict[str, str]:
    """One value per key from standard input: a hidden prompt on a terminal, else a line each."""
    values: dict[str, str] = {}
    for key in keys:
        if sys.stdin.isatty():
            value = getpass.getpass(f"{key}: ")
        else:
            value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise Refused(f"no value given for {key}")
        values[key] = value
    return values


def keep_private(backend: Any) -> None:
    """A keyring kept in a file (keyrings.alt) stays readable by its owner alone."""
    path = getattr(backend, "file_path", None)
    if not isinstance(path, str) or not os.path.isfile(path):
        return
    if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
        os.chmod(path, 0o600)


def main(argv: list[str] | None = None) -> int:
    """Store each key under the service; exit 0 done, 2 refused."""
    parser = argparse.ArgumentParser(description="Store scoped-mcp keys in an OS keyring.")
    parser.add_argument("service", help="e.g. scoped-mcp/notifier")
    parser.add_argument("keys", nargs="+", metavar="KEY")
    parser.add_argument("--backend", help="keyring backend class (default: keyring's choice)")
    args = parser.parse_args(argv)
    os.umask(0o077)
    try:
        backend = choose(args.backend)
        values = read_values(args.keys)
        outcome = {}
        for key, value in values.items():
            same = backend.get_password(args.service, key) == value
            if not same:
                backend.set_password(args.service, key, value)
            outcome[key] = "unchanged" if same else "set"
        keep_private(backend)
    except Refused as exc:
        print(f"provision.py: {exc}; nothing stored", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - keyring backends raise anything; name only its type
        print(f"provision.py: the keyring failed ({type(exc).__name__})", file=sys.stderr)
        return 2
    for key, result in outcome.items():
        print(f"{args.service}/{key}: {result}")
    print(f"keyring backend {qualname(backend)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
