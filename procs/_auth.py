"""Control-request credentials: an HMAC token per run directory, signed requests, replay guard.

``bitrader up`` writes a random 256-bit token to ``<run dir>/control.token`` (0600); every
process of the group reads it at start, every operator command signs its request with it. A
signed request carries ``auth_ts`` (ns), ``auth_nonce`` and ``auth_mac`` =
HMAC-SHA256(token, cmd, ts, nonce, the other arguments); a request older than ``MAX_SKEW_S``
or a nonce seen before is refused, so a captured request cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from procs._files import FILE_MODE, loose_mode, write_private

TOKEN_FILE: Final = "control.token"
MAX_SKEW_S: Final = 30.0
_NONCES_KEPT: Final = 4096
AUTH_FIELDS: Final = ("auth_ts", "auth_nonce", "auth_mac")
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class AuthError(Exception):
    """A control request without valid credentials."""


def token_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / TOKEN_FILE


def ensure_token(run_dir: str | Path) -> Path:
    """Create the run directory's token (0600) unless it exists; return its path.

    Atomic: processes starting at once all end up reading the one token that was linked first.
    """
    path = token_path(run_dir)
    if path.exists():
        return path
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(6)}.tmp")
    write_private(tmp, (secrets.token_hex(32) + "\n").encode())
    try:
        os.link(tmp, path)  # fails if another process linked its token first
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path


def read_token(path: str | Path) -> bytes:
    """The token in ``path``; ``AuthError`` when missing, readable by others, or malformed."""
    p = Path(path)
    try:
        if loose_mode(p):
            raise AuthError(f"{p}: readable by group or others; chmod {FILE_MODE:o} it")
        token = bytes.fromhex(p.read_text().strip())
    except FileNotFoundError:
        raise AuthError(f"{p}: no control token (start the group with bitrader up)") from None
    except (OSError, ValueError) as exc:
        raise AuthError(f"{p}: unreadable control token: {exc}") from None
    if len(token) < 16:
        raise AuthError(f"{p}: control token shorter than 128 bits")
    return token


def _mac(token: bytes, cmd: str, ts: str, nonce: str, args: dict[str, str]) -> str:
    rest = {k: v for k, v in args.items() if k not in AUTH_FIELDS}
    text = "\n".join((cmd, ts, nonce, json.dumps(rest, sort_keys=True, separators=(",", ":"))))
    return hmac.new(token, text.encode(), hashlib.sha256).hexdigest()


def sign(token: bytes, cmd: str, args: dict[str, str], now_ns: int | None = None) -> dict[str, str]:
    """``args`` plus the three ``auth_*`` fields for ``cmd``."""
    ts = str(time.time_ns() if now_ns is None else now_ns)
    nonce = secrets.token_hex(12)
    return {
        **args,
        "auth_ts": ts,
        "auth_nonce": nonce,
        "auth_mac": _mac(token, cmd, ts, nonce, args),
    }


class Verifier:
    """Checks signed requests for one process; remembers recent nonces (bounded)."""

    def __init__(self, token: bytes, max_skew_s: float = MAX_SKEW_S) -> None:
        self._token = token
        self._skew_ns = int(max_skew_s * 1e9)
        self._seen: OrderedDict[str, int] = OrderedDict()

    def check(self, cmd: str, args: dict[str, str], now_ns: int | None = None) -> None:
        """Return quietly for a valid, fresh, first-seen request; raise ``AuthError`` else."""
        ts, nonce, mac = (args.get(k, "") for k in AUTH_FIELDS)
        if not (ts and nonce and mac):
            raise AuthError("credentials required")
        now = time.time_ns() if now_ns is None else now_ns
        try:
            age = abs(now - int(ts))
        except ValueError:
            raise AuthError("bad auth_ts") from None
        if age > self._skew_ns:
            raise AuthError(f"request timestamp {age / 1e9:.0f} s off (clock, or a replay)")
        if not hmac.compare_digest(mac, _mac(self._token, cmd, ts, nonce, args)):
            raise AuthError("bad credentials")
        if nonce in self._seen:
            raise AuthError("replayed request")
        self._seen[nonce] = now
        while len(self._seen) > _NONCES_KEPT or (
            self._seen and now - next(iter(self._seen.values())) > 2 * self._skew_ns
        ):
            self._seen.popitem(last=False)


def signed_args(
    token_file: str | Path, cmd: str, args: dict[str, str] | None = None
) -> dict[str, str]:
    """``args`` signed for ``cmd`` with the token in ``token_file`` (``AuthError`` if unusable)."""
    return sign(read_token(token_file), cmd, dict(args or {}))


def strip(args: dict[str, str]) -> dict[str, str]:
    """``args`` without the credentials (what a handler and the audit log see)."""
    return {k: v for k, v in args.items() if k not in AUTH_FIELDS}


def guard_wsgi(app: WsgiApp, allow_ips: Sequence[str], token: bytes) -> WsgiApp:
    """``app`` answering only ``allow_ips`` that send ``Authorization: Bearer <token hex>``."""
    allowed = frozenset(allow_ips)
    expected = f"Bearer {token.hex()}"

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REMOTE_ADDR") not in allowed:
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"address not allowed\n"]
        if not hmac.compare_digest(str(environ.get("HTTP_AUTHORIZATION", "")), expected):
            start_response("401 Unauthorized", [("WWW-Authenticate", "Bearer")])
            return [b"credentials required\n"]
        return app(environ, start_response)

    return guarded


def serve_guarded(
    host: str, port: int, app: WsgiApp, allow_ips: Sequence[str], token: bytes
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``guard_wsgi(app)`` on ``host:port`` from a daemon thread (like prometheus's)."""

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # stdlib's name
            return

    httpd = make_server(host, port, guard_wsgi(app, allow_ips, token), handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return httpd, thread
