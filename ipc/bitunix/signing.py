"""Bitunix request signing: double SHA-256 (not HMAC) for REST and WS login.

REST: sign = sha256(sha256(nonce + timestamp + apiKey + queryParams + body) + secret)
WS:   sign = sha256(sha256(nonce + str(timestamp_s) + apiKey) + secret)
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Final

import msgspec

__all__ = ["compact_json", "new_nonce", "query_string", "sign_rest", "sign_ws_login"]

_JSON: Final = msgspec.json.Encoder()


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def query_string(params: Mapping[str, object] | None) -> str:
    """Concatenate ``key + value`` over params sorted by key; empty/None values are skipped."""
    if not params:
        return ""
    return "".join(
        f"{k}{_scalar(v)}" for k, v in sorted(params.items()) if v is not None and v != ""
    )


def _scalar(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def compact_json(body: object) -> str:
    """Serialise a request body once, with no whitespace: these are the bytes signed and sent."""
    return _JSON.encode(body).decode("utf-8")


def sign_rest(
    *, nonce: str, timestamp: str, api_key: str, query: str, body: str, secret: str
) -> str:
    """Return the lowercase hex REST signature over exactly the given query and body text."""
    return _sha256_hex(_sha256_hex(nonce + timestamp + api_key + query + body) + secret)


def sign_ws_login(*, nonce: str, timestamp_s: int, api_key: str, secret: str) -> str:
    """Return the WS login signature (timestamp in seconds, no query or body)."""
    return _sha256_hex(_sha256_hex(nonce + str(timestamp_s) + api_key) + secret)


def new_nonce() -> str:
    """Return a fresh 32-character hex nonce."""
    return secrets.token_hex(16)
