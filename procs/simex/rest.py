"""simex's REST server (aiohttp): auth, per-endpoint rate limits, faults, ``{code,msg,data}``.

Business errors answer HTTP 200 with the venue's codes; unknown paths answer HTTP 404. Bad input
of any shape gets the venue's 10002 (parameter) or 10007 (signature), never a traceback. In
``strict`` mode it also refuses what the venue's docs do not allow: a signature not in lowercase
hex, a timestamp that is not milliseconds in digits, a nonce replayed within the window, and
numbers where the venue wants strings (``qty``, ``price``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec
from aiohttp import web

from procs.exchange.model import ExchangeError
from procs.simex.auth import NonceWindow, rest_sign_ok, sign_format_ok
from procs.simex.config import KeyConfig, LimitsConfig
from procs.simex.faults import Faults
from procs.simex.reqlog import RequestLog
from procs.simex.rest_handlers import ENDPOINTS
from procs.simex.venue import Venue

__all__ = ["RestServer", "TokenBuckets", "envelope"]

log = logging.getLogger(__name__)

_ENC: Final = msgspec.json.Encoder()
_DEC: Final = msgspec.json.Decoder()
_P: Final = "/api/v1/futures/trade"
# strict: the venue documents these as JSON strings (reference §3.10, §3.11)
_STRING_FIELDS: Final = {
    f"{_P}/place_order": ("qty", "price"),
    f"{_P}/modify_order": ("qty", "price"),
    f"{_P}/batch_order": (),  # each orderList item: qty, price
}


def envelope(code: int, msg: str, data: object = None) -> bytes:
    return _ENC.encode({"code": code, "msg": msg, "data": data})


class TokenBuckets:
    """One token bucket per key; capacity equals the per-second rate."""

    def __init__(self) -> None:
        self._b: dict[tuple[str, str], tuple[float, float]] = {}

    def take(self, key: tuple[str, str], rate: float, now: float | None = None) -> bool:
        t = time.monotonic() if now is None else now
        tokens, last = self._b.get(key, (rate, t))
        tokens = min(rate, tokens + (t - last) * rate)
        if tokens < 1.0:
            self._b[key] = (tokens, t)
            return False
        self._b[key] = (tokens - 1.0, t)
        return True


class RestServer:
    """Answers every §3.2 path; ``flush`` hands the resulting pushes to the WS hub."""

    def __init__(
        self,
        venue: Venue,
        faults: Faults,
        keys: Mapping[str, KeyConfig],
        limits: LimitsConfig,
        *,
        strict: bool = False,
    ) -> None:
        self._venue = venue
        self._faults = faults
        self._keys = dict(keys)
        self._limits = limits
        self._strict = strict
        self._nonces = NonceWindow(2 * limits.recv_window_s)  # a timestamp is good for ±window
        self._buckets = TokenBuckets()
        self._flush_writes: Callable[[], None] = lambda: None
        self.requests_total = 0
        self.bad_requests_total = 0
        self.log = RequestLog()

    def on_flush(self, flush_writes: Callable[[], None]) -> None:
        """Call ``flush_writes`` after each request's pushes are queued (the WS hub's)."""
        self._flush_writes = flush_writes

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.requests_total += 1
        arrived_ns = time.time_ns()
        entry = ENDPOINTS.get(request.path)
        if entry is None:
            return web.Response(status=404, text="Not Found")
        method, private, rate_class, handler = entry
        who = request.headers.get("api-key", "") if private else f"ip:{request.remote}"
        client_ts = request.headers.get("timestamp", "")

        def logged(code: int, reduce_only: bool = False) -> None:
            self.log.add(arrived_ns, client_ts, who, request.path, code, reduce_only)

        if request.method != method:
            logged(405)
            return web.Response(status=405, text="Method Not Allowed")
        body = await request.read() if method == "POST" else b""
        fault = self._faults.rest_fault()
        if fault == "error":
            logged(self._faults.state.rest_error_status, _reduce_only(body))
            return web.Response(
                status=self._faults.state.rest_error_status, text="Service Unavailable"
            )
        if fault == "ratelimit":
            logged(10005, _reduce_only(body))
            return _json(envelope(10005, "Too many requests"))
        code, reduce_only = 0, False
        try:
            account = self._authorise(request, body, rate_class) if private else ""
            if not private and not self._take(request.remote or "?", request.path, rate_class):
                raise ExchangeError(10006, "Request too frequently")
            params = self._params(request, body)
            reduce_only = params.get("reduceOnly") in (True, "true")
            if self._strict and request.path in _STRING_FIELDS:
                _check_strings(request.path, params)
            data = handler(self._venue, account, params, self._faults.now_ms())
            payload = envelope(0, "Success", data)
        except ExchangeError as e:
            code, payload = e.code, envelope(e.code, e.msg)
        except (TypeError, ValueError, ArithmeticError) as e:
            # a shape no handler check foresaw: still the venue's parameter error, and counted
            self.bad_requests_total += 1
            log.warning("bad request path=%s error=%r", request.path, e)
            code, payload = 10002, envelope(10002, f"Parameter error: {e}")
        finally:
            self._venue.flush()
            self._flush_writes()
        logged(code, reduce_only)
        if private and method == "POST" and self._faults.state.ack_delay_s:
            await asyncio.sleep(self._faults.state.ack_delay_s)
        return _json(payload)

    def _take(self, who: str, path: str, rate_class: str) -> bool:
        lim = self._limits
        rate = {
            "pub": lim.rest_public_per_s,
            "std": lim.rest_private_per_s,
            "slow": lim.rest_batch_cancel_per_s,
        }[rate_class]
        return self._buckets.take((who, path), rate)

    def _authorise(self, request: web.Request, body: bytes, rate_class: str) -> str:
        h = request.headers
        api_key = h.get("api-key", "")
        if not api_key:
            raise ExchangeError(10003, "api-key can't be empty")
        key = self._keys.get(api_key)
        if key is None:
            raise ExchangeError(10007, "Signature Error")
        if key.ip_allow and (request.remote or "") not in key.ip_allow:
            raise ExchangeError(10004, "IP not in API-key whitelist")
        nonce, ts, sign = h.get("nonce", ""), h.get("timestamp", ""), h.get("sign", "")
        if not nonce or not ts or not sign or self._faults.state.reject_signatures:
            raise ExchangeError(10007, "Signature Error")
        if self._strict and not (ts.isascii() and ts.isdigit()):
            raise ExchangeError(10007, "Signature Error: timestamp must be milliseconds")
        try:
            skew_ms = abs(self._faults.now_ms() - int(ts))
        except ValueError:
            raise ExchangeError(10007, "Signature Error") from None
        if skew_ms > self._limits.recv_window_s * 1000:
            raise ExchangeError(10007, "Signature Error")
        if self._strict and not sign_format_ok(sign):
            raise ExchangeError(10007, "Signature Error: sign must be lowercase hex")
        ok = rest_sign_ok(
            sign, key.secret, nonce=nonce, timestamp=ts, api_key=api_key,
            query=request.query.items() if request.method == "GET" else (),
            body=body.decode("utf-8", errors="replace"), strict=self._strict,
        )  # fmt: skip
        if not ok:
            raise ExchangeError(10007, "Signature Error")
        if self._strict and self._nonces.replayed(api_key, nonce, ts, self._faults.now_ms() / 1e3):
            raise ExchangeError(10007, "Signature Error: nonce already used")
        if not self._take(api_key, request.path, rate_class):
            raise ExchangeError(10006, "Request too frequently")
        return key.account

    def _params(self, request: web.Request, body: bytes) -> dict[str, Any]:
        if request.method == "GET":
            return dict(request.query)
        if not body.strip():
            return {}
        try:
            obj = _DEC.decode(body)
        except (msgspec.DecodeError, RecursionError):  # RecursionError: nested too deep
            raise ExchangeError(10002, "Parameter error: body is not JSON") from None
        if not isinstance(obj, dict):
            raise ExchangeError(10002, "Parameter error: body must be a JSON object")
        return obj


def _reduce_only(body: bytes) -> bool:
    """Whether a POST body asks for a reduce-only order (for the request log only)."""
    try:
        obj = _DEC.decode(body) if body.strip() else None
    except (msgspec.DecodeError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("reduceOnly") in (True, "true")


def _check_strings(path: str, params: dict[str, Any]) -> None:
    items = params.get("orderList") if path.endswith("/batch_order") else [params]
    names = _STRING_FIELDS[path] or ("qty", "price")
    for item in items if isinstance(items, list) else ():
        for name in names:
            if isinstance(item, dict) and name in item and not isinstance(item[name], str):
                raise ExchangeError(10002, f"Parameter error: {name} must be a string")


def _json(payload: bytes) -> web.Response:
    return web.Response(body=payload, content_type="application/json")
