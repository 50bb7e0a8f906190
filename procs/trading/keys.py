"""Where execution's secrets come from: the keystore, a key file, or its own environment.

Every secret loaded here is registered with the log redaction filter before anything can log
it. The audit chain's HMAC key comes from the keystore when one is configured; otherwise (dev,
demo, paper) from ``audit.key`` beside the journal, generated 0600 on first use.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Final

from procs._files import FILE_MODE
from procs._redact import register_secret
from procs.keystore.store import (
    KeyFileError,
    KeyStoreError,
    Secrets,
    check_private,
    load,
    mask,
    read_key_file,
)
from procs.trading.config import VenueConfig

log = logging.getLogger(__name__)

AUDIT_KEY_FILE: Final = "audit.key"


def load_secrets(cfg: VenueConfig, environ: dict[str, str]) -> Secrets:
    """The configured secrets: keystore, else key file, else environment (maybe empty).

    Raises ``KeyStoreError`` (``KeyFileError`` for a configuration problem: exit 78).
    """
    if cfg.keystore_path:
        phrase = environ.get(cfg.keystore_passphrase_env, "")
        if not phrase:
            raise KeyFileError(
                f"keystore {cfg.keystore_path} configured but {cfg.keystore_passphrase_env}"
                " is not set for execution"
            )
        register_secret(phrase)
        data = load(cfg.keystore_path, phrase)
        source = f"keystore {cfg.keystore_path}"
    elif cfg.key_file:
        data = read_key_file(cfg.key_file)
        source = f"key file {cfg.key_file}"
    else:
        data = Secrets(
            api_key=environ.get(cfg.api_key_env, ""), secret=environ.get(cfg.secret_env, "")
        )
        source = f"environment {cfg.api_key_env}/{cfg.secret_env}"
    register_secret(*data.values())
    log.info("keys source=%s api_key=%s", source, mask(data.api_key))
    return data


def load_keys(cfg: VenueConfig, environ: dict[str, str]) -> tuple[str, str]:
    """Return ``(api_key, secret)``; see ``load_secrets``."""
    data = load_secrets(cfg, environ)
    return data.api_key, data.secret


def audit_key_file(journal_path: str | Path) -> Path:
    return Path(journal_path).parent / AUDIT_KEY_FILE


def read_audit_key_file(path: str | Path, *, create: bool) -> bytes:
    """The hex key in ``path`` (0600 or ``KeyFileError``); generated first when ``create``."""
    p = Path(path)
    if create and not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            with open(p, "x", opener=_opener) as f:
                f.write(secrets.token_hex(32) + "\n")
            log.info("generated audit key %s (dev/demo: production takes it from the keystore)", p)
        except FileExistsError:
            pass  # another process made it first: use theirs
    check_private(p)
    try:
        key = bytes.fromhex(p.read_text().strip())
    except ValueError:
        raise KeyFileError(f"{p}: not a hex key") from None
    if len(key) < 16:
        raise KeyFileError(f"{p}: key shorter than 128 bits")
    register_secret(key.hex())
    return key


def _opener(path: str, flags: int) -> int:
    return os.open(path, flags, FILE_MODE)


def audit_key(cfg: VenueConfig, journal_path: str | Path, data: Secrets | None) -> bytes:
    """The chain's HMAC key: the keystore's when configured, else the file beside the journal."""
    if cfg.keystore_path:
        if data is None or not data.audit_key:
            raise KeyStoreError(f"keystore {cfg.keystore_path} holds no audit key")
        return bytes.fromhex(data.audit_key)
    return read_audit_key_file(audit_key_file(journal_path), create=True)
