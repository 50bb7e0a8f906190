"""Access control for the dashboard: password check, sessions, CSRF tokens, login rate limit,
IP allowlist. Pure logic with the clock passed in; ``app`` applies it to requests.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Final

__all__ = [
    "Allowlist",
    "LoginLimiter",
    "Password",
    "Session",
    "Sessions",
    "csrf_ok",
    "generate_password",
]

LOOPBACK: Final = ("127.0.0.0/8", "::1/128")
TOKEN_BYTES: Final = 32


def generate_password() -> str:
    """A fresh dev password (about 128 bits), for a loopback dev config that asks for one."""
    return secrets.token_urlsafe(16)


class Password:
    """The one operator secret; compared in constant time, never stored in clear here."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the dashboard password must not be empty")
        self._digest = hashlib.sha256(secret.encode()).digest()

    def check(self, attempt: str) -> bool:
        return hmac.compare_digest(self._digest, hashlib.sha256(attempt.encode()).digest())


@dataclass(frozen=True, slots=True)
class Session:
    token: str  # the cookie value
    csrf: str  # sent back in X-CSRF-Token on every state-changing request
    user: str
    expires_s: float


class Sessions:
    """Server-side sessions keyed by an unguessable token; expire after ``ttl_s``."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._by_token: dict[str, Session] = {}

    def create(self, user: str, now_s: float) -> Session:
        self._purge(now_s)
        s = Session(
            token=secrets.token_urlsafe(TOKEN_BYTES),
            csrf=secrets.token_urlsafe(TOKEN_BYTES),
            user=user,
            expires_s=now_s + self._ttl_s,
        )
        self._by_token[s.token] = s
        return s

    def get(self, token: str | None, now_s: float) -> Session | None:
        if not token:
            return None
        s = self._by_token.get(token)
        if s is None or s.expires_s <= now_s:
            self._by_token.pop(token, None)
            return None
        return s

    def drop(self, token: str | None) -> None:
        if token:
            self._by_token.pop(token, None)

    def _purge(self, now_s: float) -> None:
        for token in [t for t, s in self._by_token.items() if s.expires_s <= now_s]:
            del self._by_token[token]

    def __len__(self) -> int:
        return len(self._by_token)


def csrf_ok(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), (sent or "").encode())


class LoginLimiter:
    """At most ``max_failures`` failed logins per address in any ``window_s``; then refuse."""

    def __init__(self, max_failures: int, window_s: float) -> None:
        self._max = max_failures
        self._window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, addr: str, now_s: float) -> deque[float]:
        q = self._failures.setdefault(addr, deque())
        while q and q[0] <= now_s - self._window_s:
            q.popleft()
        return q

    def allowed(self, addr: str, now_s: float) -> bool:
        return len(self._recent(addr, now_s)) < self._max

    def retry_after_s(self, addr: str, now_s: float) -> float:
        q = self._recent(addr, now_s)
        return 0.0 if len(q) < self._max else max(0.0, q[0] + self._window_s - now_s)

    def failed(self, addr: str, now_s: float) -> None:
        self._recent(addr, now_s).append(now_s)

    def succeeded(self, addr: str) -> None:
        self._failures.pop(addr, None)


class Allowlist:
    """Addresses allowed to connect; empty means loopback only."""

    def __init__(self, cidrs: list[str]) -> None:
        self.networks = [ipaddress.ip_network(c, strict=False) for c in (cidrs or LOOPBACK)]

    def allows(self, addr: str | None) -> bool:
        if not addr:
            return False
        try:
            ip = ipaddress.ip_address(addr.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in self.networks)
