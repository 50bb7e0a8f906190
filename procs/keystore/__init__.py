"""The keystore library: secrets encrypted at rest (``store``) and ``bitrader keys`` (``cli``)."""

from __future__ import annotations

from procs.keystore.store import (
    PASSPHRASE_ENV,
    KeyFileError,
    KeyStoreError,
    Secrets,
    WrongPassphraseError,
    check_private,
    load,
    mask,
    read_key_file,
    save,
)

__all__ = [
    "PASSPHRASE_ENV",
    "KeyFileError",
    "KeyStoreError",
    "Secrets",
    "WrongPassphraseError",
    "check_private",
    "load",
    "mask",
    "read_key_file",
    "save",
]
