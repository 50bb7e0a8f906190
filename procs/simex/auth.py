"""simex's own check of Bitunix signatures and nonces (reference §2.2, §4.3), server side.

Written from the fact sheet, not from ``ipc/bitunix/signing.py``: the bot signs with that
module, simex verifies with this one, so a bug shared by both cannot hide. Where the sheet is
unsure (empty query params, a space-stripped body) every variant it names is accepted.

    digest = hex(SHA256(nonce + timestamp + apiKey + queryParams + body))   (REST)
    digest = hex(SHA256(nonce + str(timestamp) + apiKey))                    (WS login)
    sign   = hex(SHA256(digest + secretKey))                                 (lowercase hex)
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import deque
from collections.abc import Iterable
from typing import Final

__all__ = [
    "NonceWindow",
    "params_text",
    "rest_sign",
    "rest_sign_ok",
    "sign_format_ok",
    "ws_login_sign",
]

_LOWER_HEX_64: Final = re.compile(r"[0-9a-f]{64}")


def _hex_sha256(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()


def _signed(secret: str, *fields: str) -> str:
    digest = _hex_sha256(*(f.encode("utf-8") for f in fields))
    return _hex_sha256(digest.encode("ascii"), secret.encode("utf-8"))


def params_text(pairs: Iterable[tuple[str, str]], *, skip_empty: bool = True) -> str:
    """Concatenate ``key`` then ``value`` over the params in ASCII key order, no separators."""
    kept = [(k, v) for k, v in pairs if v or not skip_empty]
    kept.sort(key=lambda kv: kv[0].encode("utf-8"))
    return "".join(k + v for k, v in kept)


def rest_sign(
    secret: str, *, nonce: str, timestamp: str, api_key: str, params: str, body: str
) -> str:
    """The REST signature the venue expects for these exact fields."""
    return _signed(secret, nonce, timestamp, api_key, params, body)


def ws_login_sign(secret: str, *, nonce: str, timestamp: int, api_key: str) -> str:
    """The WS login signature (no params, no body; the timestamp as its decimal digits)."""
    return _signed(secret, nonce, str(timestamp), api_key)


def sign_format_ok(sign: str) -> bool:
    """Whether ``sign`` is spelled as the venue writes it: 64 lowercase hex digits."""
    return _LOWER_HEX_64.fullmatch(sign) is not None


def rest_sign_ok(
    sign: str,
    secret: str,
    *,
    nonce: str,
    timestamp: str,
    api_key: str,
    query: Iterable[tuple[str, str]],
    body: str,
    strict: bool,
) -> bool:
    """Check a REST ``sign`` header against every reading of the request the sheet allows.

    ``query`` holds the decoded URL parameters (GET; empty for POST) and ``body`` the exact text
    received. Lenient (``strict`` False) also takes the signature in upper case.
    """
    got = sign if strict else sign.lower()
    pairs = list(query)
    params = {params_text(pairs), params_text(pairs, skip_empty=False)}
    bodies = {body, body.replace(" ", "")}
    for p in params:
        for b in bodies:
            want = rest_sign(
                secret, nonce=nonce, timestamp=timestamp, api_key=api_key, params=p, body=b
            )
            if hmac.compare_digest(got, want):
                return True
    return False


class NonceWindow:
    """Signed (nonce, timestamp) pairs seen per api key during the last ``window_s``.

    A pair seen again inside the window is a replayed request: refused. The pair, not the nonce
    alone, is the key: the official Java SDK sends the constant nonce ``defaultnonce`` with a
    fresh timestamp (reference §2.1), which is not a replay (the signature covers both), and an
    exchange does not refuse its own demo. Past the window the timestamp check refuses a replay.
    Memory is bounded by the requests a key can make in one window (the rate limits).
    """

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._expiry: dict[tuple[str, str, str], float] = {}
        self._order: deque[tuple[float, tuple[str, str, str]]] = deque()

    def replayed(self, api_key: str, nonce: str, timestamp: str, now_s: float) -> bool:
        """Return True if ``api_key`` used this pair within the window; else remember it."""
        while self._order and self._order[0][0] <= now_s:
            expires, old = self._order.popleft()
            if self._expiry.get(old) == expires:
                del self._expiry[old]
        key = (api_key, nonce, timestamp)
        if key in self._expiry:
            return True
        expires = now_s + self._window_s
        self._expiry[key] = expires
        self._order.append((expires, key))
        return False

    def __len__(self) -> int:
        return len(self._expiry)
