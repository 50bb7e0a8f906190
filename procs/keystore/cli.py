"""``bitrader keys set|show|rotate``: the encrypted keystore from a shell.

Secrets never come from the command line (it is visible in ``ps``): the API key and secret are
prompted for without echo, or read from ``BITUNIX_API_KEY``/``BITUNIX_SECRET`` (``--from-env``)
or from two lines on stdin (``--stdin``). The passphrase is prompted for, or read from
``BITRADER_KEYSTORE_PASSPHRASE`` (``BITRADER_KEYSTORE_NEW_PASSPHRASE`` for ``rotate``).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Final

from procs.keystore.store import (
    PASSPHRASE_ENV,
    KeyFileError,
    KeyStoreError,
    Secrets,
    load_with_header,
    mask,
    save,
    with_generated,
)

NEW_PASSPHRASE_ENV: Final = "BITRADER_KEYSTORE_NEW_PASSPHRASE"
PATH_ENV: Final = "BITRADER_KEYSTORE"
EXIT_CONFIG: Final = 78


def default_path() -> Path:
    """``$BITRADER_KEYSTORE``, else ``$XDG_CONFIG_HOME/bitrader/keystore.json``."""
    if os.environ.get(PATH_ENV):
        return Path(os.environ[PATH_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "bitrader" / "keystore.json"


class InputError(Exception):
    """A secret could not be read (no terminal, empty, mismatch)."""


def _prompt(label: str, *, confirm: bool = False, ask: Callable[[str], str]) -> str:
    if not sys.stdin.isatty():
        raise InputError(f"{label}: no terminal to prompt on (use the environment or --stdin)")
    value = ask(f"{label}: ")
    if confirm and ask(f"{label} (again): ") != value:
        raise InputError(f"{label}: the two entries differ")
    return value


def passphrase(env: str, label: str, *, confirm: bool, ask: Callable[[str], str]) -> str:
    """The passphrase from ``env`` when set, else from a no-echo prompt."""
    value = os.environ.get(env) or _prompt(label, confirm=confirm, ask=ask)
    if not value:
        raise InputError(f"{label}: empty")
    return value


def credentials(args: argparse.Namespace, ask: Callable[[str], str]) -> tuple[str, str]:
    if args.from_env:
        key, secret = os.environ.get("BITUNIX_API_KEY", ""), os.environ.get("BITUNIX_SECRET", "")
    elif args.stdin:
        lines = sys.stdin.read().splitlines()
        key, secret = [*lines, "", ""][:2]
    else:
        key = _prompt("API key", ask=ask)
        secret = _prompt("API secret", ask=ask)
    if not key.strip() or not secret.strip():
        raise InputError("the API key and the secret must both be given")
    return key.strip(), secret.strip()


def _set(args: argparse.Namespace, ask: Callable[[str], str]) -> int:
    if args.keystore.exists() and not args.force:
        print(f"keys set: {args.keystore} exists (rotate it, or --force)", file=sys.stderr)
        return 1
    key, secret = credentials(args, ask)
    phrase = passphrase(PASSPHRASE_ENV, "new keystore passphrase", confirm=True, ask=ask)
    save(args.keystore, with_generated(Secrets(api_key=key, secret=secret)), phrase)
    print(f"keystore written: {args.keystore} (0600, AES-256-GCM, scrypt)")
    return 0


def _show(args: argparse.Namespace, ask: Callable[[str], str]) -> int:
    phrase = passphrase(PASSPHRASE_ENV, "keystore passphrase", confirm=False, ask=ask)
    data, header = load_with_header(args.keystore, phrase)
    kdf = header["kdf"]
    rows = [
        ("keystore", str(args.keystore)),
        ("cipher", f"{header['cipher']}, scrypt n={kdf['n']} r={kdf['r']} p={kdf['p']}"),
        ("created", _utc(header["created_ns"])),
        ("updated", _utc(header["updated_ns"])),
        ("api_key", mask(data.api_key)),
        ("secret", mask(data.secret)),
        ("audit_key", mask(data.audit_key)),
    ]
    for name, value in rows:
        print(f"{name:<14} {value}")
    return 0


def _rotate(args: argparse.Namespace, ask: Callable[[str], str]) -> int:
    phrase = passphrase(PASSPHRASE_ENV, "keystore passphrase", confirm=False, ask=ask)
    data, _ = load_with_header(args.keystore, phrase)
    if not args.passphrase_only:
        key, secret = credentials(args, ask)
        # the audit key stays: the journal's chain was sealed with it and must still verify
        data = replace(data, api_key=key, secret=secret)
    new = os.environ.get(NEW_PASSPHRASE_ENV) or (
        _prompt("new passphrase (empty: keep)", confirm=True, ask=ask) if sys.stdin.isatty() else ""
    )
    save(args.keystore, with_generated(data), new or phrase)
    what = "passphrase" if args.passphrase_only else "API key and secret"
    print(f"keystore rotated: {what}{'' if new else ' (passphrase kept)'}")
    return 0


def _utc(ts_ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts_ns / 1e9))


def main(argv: list[str] | None = None, ask: Callable[[str], str] = getpass.getpass) -> int:
    """``bitrader keys set|show|rotate [--keystore PATH]``; exit 78 on a bad keystore."""
    ap = argparse.ArgumentParser(prog="bitrader keys")
    ap.add_argument("action", choices=["set", "show", "rotate"])
    ap.add_argument("--keystore", type=Path, default=default_path())
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--from-env", action="store_true", help="BITUNIX_API_KEY, BITUNIX_SECRET")
    src.add_argument("--stdin", action="store_true", help="two lines: API key, then secret")
    ap.add_argument("--force", action="store_true", help="set: overwrite an existing keystore")
    ap.add_argument("--passphrase-only", action="store_true", help="rotate: the passphrase only")
    args = ap.parse_args(argv)
    action = {"set": _set, "show": _show, "rotate": _rotate}[args.action]
    try:
        return action(args, ask)
    except KeyFileError as exc:
        print(f"keys {args.action}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (KeyStoreError, InputError) as exc:
        print(f"keys {args.action}: {exc}", file=sys.stderr)
        return 1
