#!/usr/bin/env python3
"""Write keys into a scoped-mcp secrets file that only its owner can read (mode 0600).

    provision.py PATH KEY [KEY ...]          one value per KEY from standard input (a hidden
                                             prompt on a terminal, else one line per key)
    provision.py PATH --from SOURCE.yml      every KEY: value of the YAML mapping SOURCE

Keys already in PATH and not named are kept. The file is written whole to a new 0600 file in the
same directory and renamed over PATH, so a reader never sees half of it, and its directory is
created 0700 when missing. Run it again at will: unchanged values are not rewritten, and a file
someone made readable by others is put back to 0600. Values are never printed, nor quoted in an
error. Needs PyYAML (run it with the Python scoped-mcp is installed in).
"""

from __future__ import annotations

import argparse
import getpass
import os
import stat
import sys
from pathlib import Path

import yaml


class Refused(Exception):
    """A reason to stop without writing anything; the message holds no value."""


Value = str | int | float


def load_mapping(path: Path) -> dict[str, Value]:
    """The ``KEY: value`` mapping in ``path``; a parse error is reported by line only."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise Refused(f"{path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:  # its message may quote the line, and so a value
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise Refused(f"{path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise Refused(f"{path} must be a mapping of KEY: value")
    for key, value in data.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, Value):
            raise Refused(f"{path}: {key!s} must be a name with a text or number value")
    return data


def existing(path: Path) -> tuple[dict[str, Value], int | None]:
    """What ``path`` holds now and its mode, refusing a file we must not rewrite."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return {}, None
    if not stat.S_ISREG(info.st_mode):
        raise Refused(f"{path} is not a regular file (a symbolic link, or another kind)")
    if info.st_uid != os.geteuid():
        raise Refused(f"{path} is owned by uid {info.st_uid}, not {os.geteuid()}")
    return load_mapping(path), stat.S_IMODE(info.st_mode)


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


def write_private(path: Path, data: dict[str, Value]) -> None:
    """Replace ``path`` by a 0600 file holding ``data``, through a new file and a rename."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    new = path.with_name(f".{path.name}.new")
    new.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(new, flags, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yaml.safe_dump(data, out, sort_keys=False, allow_unicode=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(new, path)
    finally:
        new.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Merge the given keys into the secrets file; exit 0 done, 2 refused."""
    parser = argparse.ArgumentParser(description="Write keys into a 0600 scoped-mcp secrets file.")
    parser.add_argument("path", type=Path)
    parser.add_argument("keys", nargs="*", metavar="KEY")
    parser.add_argument("--from", dest="source", type=Path, help="a YAML file of KEY: value")
    args = parser.parse_args(argv)
    if bool(args.keys) == bool(args.source):
        parser.error("name the keys to read from standard input, or give --from SOURCE.yml")
    path = Path(os.path.expanduser(args.path))
    os.umask(0o077)
    try:
        current, mode = existing(path)
        given: dict[str, Value] = {}
        given.update(load_mapping(args.source) if args.source else read_values(args.keys))
        merged = {**current, **given}
        if merged != current or mode is None or mode & 0o077:
            write_private(path, merged)
    except (Refused, OSError) as exc:
        reason = str(exc) if isinstance(exc, Refused) else f"{exc.strerror}: {exc.filename}"
        print(f"provision.py: {reason}; nothing written", file=sys.stderr)
        return 2
    for key, value in given.items():
        print(f"{path}: {key} {'unchanged' if current.get(key) == value else 'set'}")
    print(f"{path}: {len(merged)} keys, mode {stat.S_IMODE(path.stat().st_mode):04o}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
