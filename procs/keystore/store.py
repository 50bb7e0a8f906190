"""The encrypted keystore file and the plaintext key file: read, write, check permissions.

Keystore: JSON with the KDF parameters and an AES-256-GCM ciphertext of the secrets (the API
key and secret, the audit chain's HMAC key). The key is derived from a
passphrase with scrypt; the header is the AEAD's associated data, so it cannot be altered
unnoticed. A keystore or key file that group or others can read is refused (``KeyFileError``).

Errors: ``KeyStoreError`` → ``KeyFileError`` (permissions, missing, malformed),
``WrongPassphraseError`` (authentication failed: wrong passphrase or tampered file).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from procs._files import loose_mode, write_private

FORMAT: Final = "bitrader-keystore"
VERSION: Final = 1
PASSPHRASE_ENV: Final = "BITRADER_KEYSTORE_PASSPHRASE"
SCRYPT_N: Final = 2**15  # ~32 MiB and ~0.1 s per derivation: cheap once, costly to brute-force
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_SALT_BYTES: Final = 16
_NONCE_BYTES: Final = 12


class KeyStoreError(Exception):
    """Base error of the keystore."""


class KeyFileError(KeyStoreError):
    """The file is missing, readable by others, or malformed: a configuration error (78)."""


class WrongPassphraseError(KeyStoreError):
    """The ciphertext did not authenticate: wrong passphrase, or the file was altered."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Secrets:
    """What the keystore protects. ``audit_key`` is hex."""

    api_key: str = ""
    secret: str = ""
    audit_key: str = ""

    def values(self) -> list[str]:
        return [v for v in (self.api_key, self.secret, self.audit_key) if v]


def new_hex_key() -> str:
    """Return a fresh random 256-bit key as hex."""
    return secrets.token_hex(32)


def mask(value: str) -> str:
    """Show enough of ``value`` to recognise it, never all of it."""
    if not value:
        return "(none)"
    if len(value) < 12:
        return f"{'*' * 4} ({len(value)} chars)"
    return f"{value[:4]}…{value[-2:]} ({len(value)} chars)"


def check_private(path: str | Path) -> None:
    """Raise ``KeyFileError`` unless ``path`` exists and only its owner can read it."""
    p = Path(path)
    try:
        loose = loose_mode(p)
    except FileNotFoundError:
        raise KeyFileError(f"{p}: no such file") from None
    if loose:
        raise KeyFileError(
            f"{p}: mode {os.stat(p).st_mode & 0o777:04o} lets group or others read it;"
            f" run chmod 600 {p}"
        )


def read_key_file(path: str | Path) -> Secrets:
    """Read a plaintext TOML key file (``api_key``, ``secret``); 0600 or ``KeyFileError``."""
    check_private(path)
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KeyFileError(f"{path}: not a readable TOML key file: {exc}") from None
    missing = [k for k in ("api_key", "secret") if not isinstance(raw.get(k), str) or not raw[k]]
    if missing:
        raise KeyFileError(f"{path}: {' and '.join(missing)} missing or empty (strings wanted)")
    return Secrets(api_key=raw["api_key"], secret=raw["secret"])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise KeyFileError(f"keystore field {what} must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise KeyFileError(f"keystore field {what} is not base64") from None


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def seal(data: Secrets, passphrase: str, *, n: int = 0, created_ns: int = 0) -> bytes:
    """Encrypt ``data`` under ``passphrase`` (scrypt cost ``n``, default ``SCRYPT_N``)."""
    n = n or SCRYPT_N
    if not passphrase:
        raise KeyStoreError("an empty passphrase protects nothing")
    salt, nonce = os.urandom(_SALT_BYTES), os.urandom(_NONCE_BYTES)
    now = time.time_ns()
    header = {
        "format": FORMAT,
        "version": VERSION,
        "kdf": {"name": "scrypt", "n": n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "cipher": "AES-256-GCM",
        "created_ns": created_ns or now,
        "updated_ns": now,
    }
    plain = json.dumps(
        {
            "api_key": data.api_key,
            "secret": data.secret,
            "audit_key": data.audit_key,
        }
    ).encode()
    key = _derive(passphrase, salt, n, SCRYPT_R, SCRYPT_P)
    ct = AESGCM(key).encrypt(nonce, plain, _aad(header))
    doc = {**header, "nonce": _b64(nonce), "ciphertext": _b64(ct)}
    return (json.dumps(doc, indent=2) + "\n").encode()


def _header(doc: dict[str, Any]) -> dict[str, Any]:
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise KeyFileError(f"not a {FORMAT} version {VERSION} file")
    kdf = doc.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise KeyFileError("keystore kdf must be scrypt")
    for k in ("n", "r", "p"):
        if not isinstance(kdf.get(k), int) or kdf[k] <= 0:
            raise KeyFileError(f"keystore kdf.{k} must be a positive integer")
    return {k: doc[k] for k in ("format", "version", "kdf", "cipher", "created_ns", "updated_ns")}


def open_sealed(blob: bytes, passphrase: str) -> tuple[Secrets, dict[str, Any]]:
    """Decrypt keystore bytes; return the secrets and the (authenticated) header."""
    try:
        doc = json.loads(blob)
        if not isinstance(doc, dict):
            raise KeyFileError("keystore is not a JSON object")
        header = _header(doc)
    except (ValueError, KeyError) as exc:
        raise KeyFileError(f"malformed keystore: {exc}") from None
    kdf = header["kdf"]
    salt = _unb64(kdf.get("salt"), "kdf.salt")
    key = _derive(passphrase, salt, kdf["n"], kdf["r"], kdf["p"])
    try:
        plain = AESGCM(key).decrypt(
            _unb64(doc.get("nonce"), "nonce"), _unb64(doc.get("ciphertext"), "ciphertext"),
            _aad(header),
        )  # fmt: skip
    except InvalidTag:
        raise WrongPassphraseError("keystore did not authenticate: wrong passphrase?") from None
    raw = json.loads(plain)
    return (
        Secrets(
            api_key=str(raw.get("api_key", "")),
            secret=str(raw.get("secret", "")),
            audit_key=str(raw.get("audit_key", "")),
        ),
        header,
    )


def load(path: str | Path, passphrase: str) -> Secrets:
    """Read and decrypt the keystore at ``path`` (0600 or ``KeyFileError``)."""
    check_private(path)
    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc}") from None
    return open_sealed(blob, passphrase)[0]


def load_with_header(path: str | Path, passphrase: str) -> tuple[Secrets, dict[str, Any]]:
    check_private(path)
    return open_sealed(Path(path).read_bytes(), passphrase)


def save(path: str | Path, data: Secrets, passphrase: str, *, n: int = 0) -> None:
    """Encrypt and write ``data`` to ``path`` (0600, atomic, fsync'd)."""
    created = 0
    p = Path(path)
    if p.exists():
        try:
            created = int(json.loads(p.read_bytes()).get("created_ns", 0))
        except (ValueError, AttributeError):
            created = 0
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(p, seal(data, passphrase, n=n, created_ns=created), durable=True)


def with_generated(data: Secrets) -> Secrets:
    """``data`` with an audit key, generated when missing."""
    return replace(data, audit_key=data.audit_key or new_hex_key())
