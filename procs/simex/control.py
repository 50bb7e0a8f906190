"""simex's control API (HTTP on its own loopback port) and ``bitrader simctl``.

Bound beyond loopback (``host``), it answers only ``control_allow_ips`` that send the token in
``control_token_file`` as ``Authorization: Bearer <hex>`` (``simctl --token-file``).

Endpoints: GET /_simex/status, GET|POST /_simex/faults, POST /_simex/faults/reset,
POST /_simex/ws/drop {"scope": all|public|private}, POST /_simex/ws/fuzz {"scope": ...,
"kinds": [...]} (hostile frames, ``procs.simex.fuzz``; every kind by default),
GET /_simex/requests?since_ns=N (the REST request log, ``procs.simex.reqlog``),
POST /_simex/state/save,
POST /_simex/funding/settle {"rates": {"BTCUSDT": "0.001"}} (settle funding now; rates optional).
A body of the wrong shape gets 400 with ``{"error": ...}``, never a 500 or a traceback.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec
from aiohttp import web

from ipc.endpoints import is_loopback_host
from procs._auth import read_token
from procs.simex.fuzz import FRAME_KINDS

if TYPE_CHECKING:
    from procs.simex.app import Simex
    from procs.simex.config import SimexConfig

__all__ = ["main", "make_control_app"]

log = logging.getLogger(__name__)

DEFAULT_URL: Final = "http://127.0.0.1:18082"
MAX_FUNDING_RATE: Final = Decimal(1)  # |rate| per settlement, as the [simex] config allows
_ENC: Final = msgspec.json.Encoder()
_BAD_INPUT: Final = (msgspec.DecodeError, TypeError, ValueError, ArithmeticError, AttributeError)


def _ok(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=_ENC.encode(obj), status=status, content_type="application/json")


def _body(raw: bytes) -> dict[str, Any]:
    """A JSON object body (empty: ``{}``); ValueError for anything else."""
    obj = msgspec.json.decode(raw) if raw.strip() else {}
    if not isinstance(obj, dict):
        raise ValueError(f"body must be a JSON object, was {type(obj).__name__}")
    return obj


@web.middleware
async def _bad_input_is_400(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    # a body no handler check foresaw (or nested too deep to decode) is the client's error
    try:
        return await handler(request)
    except (*_BAD_INPUT, RecursionError) as exc:
        log.warning("control bad request path=%s error=%r", request.path, exc)
        return _ok({"error": f"bad request: {exc}"}, status=400)


def make_control_app(sx: Simex) -> web.Application:
    """The control routes over a running Simex."""

    async def status(_: web.Request) -> web.Response:
        return _ok(_status_view(sx))

    async def get_faults(_: web.Request) -> web.Response:
        return _ok(sx.faults.state)

    async def set_faults(request: web.Request) -> web.Response:
        try:
            state = sx.faults.update(_body(await request.read()))
        except _BAD_INPUT as exc:
            return _ok({"error": str(exc)}, status=400)
        return _ok(state)

    async def reset_faults(_: web.Request) -> web.Response:
        return _ok(sx.faults.reset())

    async def drop_ws(request: web.Request) -> web.Response:
        return _drop(sx, await request.read())

    async def fuzz_ws(request: web.Request) -> web.Response:
        return _fuzz(sx, await request.read())

    async def requests(request: web.Request) -> web.Response:
        log_ = sx.rest.log
        entries = log_.since(int(request.query.get("since_ns", "0")))
        return _ok({"entries": entries, "dropped_total": log_.dropped_total})

    async def settle(request: web.Request) -> web.Response:
        return _settle(sx, await request.read())

    async def save(_: web.Request) -> web.Response:
        path = sx.save()
        return _ok({"path": str(path) if path else None})

    cfg = sx.config
    app = web.Application(middlewares=[*_guards(cfg), _bad_input_is_400])
    app.router.add_get("/_simex/status", status)
    app.router.add_get("/_simex/faults", get_faults)
    app.router.add_post("/_simex/faults", set_faults)
    app.router.add_post("/_simex/faults/reset", reset_faults)
    app.router.add_post("/_simex/ws/drop", drop_ws)
    app.router.add_post("/_simex/ws/fuzz", fuzz_ws)
    app.router.add_get("/_simex/requests", requests)
    app.router.add_post("/_simex/state/save", save)
    app.router.add_post("/_simex/funding/settle", settle)
    return app


def _guards(cfg: SimexConfig) -> list[Any]:
    """No guard on loopback; beyond it, the allowlist and the token."""
    if is_loopback_host(cfg.host):
        return []
    return [_guard(cfg.control_allow_ips, cfg.control_token_file)]


def _guard(allow_ips: list[str], token_file: str) -> Any:
    """Middleware: allowlisted peers carrying the control token, or 403/401."""
    allowed = frozenset(allow_ips)
    expected = f"Bearer {read_token(token_file).hex()}"

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.remote not in allowed:
            return _ok({"error": "address not allowed"}, status=403)
        if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
            return _ok({"error": "credentials required"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    return guard


def _status_view(sx: Simex) -> dict[str, object]:
    hub = sx.hub
    return {
        "rest_url": sx.rest_url,
        "ws_public_url": sx.ws_public_url,
        "ws_private_url": sx.ws_private_url,
        "connections": len(hub.conns),
        "pushes_sent_total": hub.sent_total,
        "stalled_drops_total": hub.stalled_drops_total,
        "rate_disconnects_total": hub.rate_disconnects_total,
        "rest_requests_total": sx.rest.requests_total,
        "generator_actions_total": sx.actions_total,
        "market_step_max_s": sx.step_max_s,
        "market_skipped_s_total": sx.skipped_ns_total / 1e9,
        "slow_disconnects_total": hub.slow_disconnects_total,
        "strict": sx.config.strict,
        "rest_bad_requests_total": sx.rest.bad_requests_total,
        "ws_bad_messages_total": hub.bad_messages_total,
        "ws_fuzz_frames_total": dict(hub.fuzz_frames_total),
        "rest_log_entries": len(sx.rest.log),
        "rest_log_dropped_total": sx.rest.log.dropped_total,
        "faults_injected_total": dict(sx.faults.injected_total),
        "faults": msgspec.to_builtins(sx.faults.state),
    }


def _drop(sx: Simex, raw: bytes) -> web.Response:
    scope = _body(raw).get("scope", "all")
    if not isinstance(scope, str) or scope not in ("all", "public", "private"):
        return _ok({"error": "scope must be all, public or private"}, status=400)
    return _ok({"dropped": sx.hub.drop(scope)})


def _fuzz(sx: Simex, raw: bytes) -> web.Response:
    body = _body(raw)
    scope, kinds = body.get("scope", "all"), body.get("kinds", list(FRAME_KINDS))
    if not isinstance(scope, str) or scope not in ("all", "public", "private"):
        return _ok({"error": "scope must be all, public or private"}, status=400)
    if not isinstance(kinds, list) or not kinds or not set(kinds) <= set(FRAME_KINDS):
        return _ok({"error": f"kinds must be a list of {list(FRAME_KINDS)}"}, status=400)
    return _ok({"sent": sx.hub.fuzz(scope, tuple(kinds))})


def _settle(sx: Simex, body: bytes) -> web.Response:
    rates = _rates(body, set(sx.exchange.specs))
    if isinstance(rates, str):
        return _ok({"error": rates}, status=400)
    ts_ms = sx.faults.now_ms()
    return _ok({"settled": sx.settle_funding(ts_ms, rates), "ts_ms": ts_ms})


def _rates(body: bytes, symbols: set[str]) -> dict[str, Decimal] | str:
    """``{"rates": {SYMBOL: rate}}`` (all optional) as Decimals, or the error text."""
    try:
        raw = _body(body).get("rates")
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            return "body: rates must be an object of SYMBOL: rate"
        rates = {str(k): Decimal(str(v)) for k, v in raw.items() if not isinstance(v, bool)}
    except _BAD_INPUT as exc:
        return f"body: {exc}"
    if len(rates) != len(raw):
        return "body: a rate must be a number or a numeric string"
    bad = sorted(k for k, r in rates.items() if not (r.is_finite() and abs(r) <= MAX_FUNDING_RATE))
    if bad:
        return f"body: rates must be finite, at most {MAX_FUNDING_RATE} in size: {bad}"
    unknown = set(rates) - symbols
    return f"unknown symbols {sorted(unknown)}" if unknown else rates


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _request(url: str, path: str, body: object | None = None, token: str = "") -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url.rstrip("/") + path, data=data, method="GET" if data is None else "POST"
    )
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"null")


def main(argv: list[str] | None = None) -> int:
    """``bitrader simctl [--url URL] COMMAND ...``; exit 0 on success, 1 on a refused change."""
    ap = argparse.ArgumentParser(prog="bitrader simctl", description="simex fault injection")
    ap.add_argument("--url", default=DEFAULT_URL, help=f"control API base (default {DEFAULT_URL})")
    ap.add_argument("--token-file", type=Path, help="control token (simex bound beyond loopback)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="counters, URLs and the current faults")
    sub.add_parser("faults", help="show the current faults")
    p_set = sub.add_parser("set", help="set faults: KEY=VALUE ... (e.g. rest_error_rate=0.2)")
    p_set.add_argument("pairs", nargs="+")
    sub.add_parser("reset", help="clear every fault")
    p_drop = sub.add_parser("drop-ws", help="disconnect WS connections now")
    p_drop.add_argument("scope", nargs="?", default="all", choices=["all", "public", "private"])
    p_fuzz = sub.add_parser("fuzz-ws", help="push hostile frames to WS connections now")
    p_fuzz.add_argument("scope", nargs="?", default="all", choices=["all", "public", "private"])
    p_stall = sub.add_parser("stall-ws", help="WS connections get nothing for SECONDS")
    p_stall.add_argument("seconds", type=float)
    p_stall.add_argument("scope", nargs="?", default="all", choices=["all", "public", "private"])
    sub.add_parser("save", help="write the state file now")
    args = ap.parse_args(argv)
    token = read_token(args.token_file).hex() if args.token_file else ""

    def _call(url: str, path: str, body: object | None = None) -> tuple[int, Any]:
        return _request(url, path, body, token)

    if args.cmd == "status":
        code, out = _call(args.url, "/_simex/status")
    elif args.cmd == "faults":
        code, out = _call(args.url, "/_simex/faults")
    elif args.cmd == "set":
        try:
            changes = {k: _value(v) for k, v in (p.split("=", 1) for p in args.pairs)}
        except ValueError:
            print("simctl: set takes KEY=VALUE pairs", file=sys.stderr)
            return 2
        code, out = _call(args.url, "/_simex/faults", changes)
    elif args.cmd == "reset":
        code, out = _call(args.url, "/_simex/faults/reset", {})
    elif args.cmd == "drop-ws":
        code, out = _call(args.url, "/_simex/ws/drop", {"scope": args.scope})
    elif args.cmd == "fuzz-ws":
        code, out = _call(args.url, "/_simex/ws/fuzz", {"scope": args.scope})
    elif args.cmd == "stall-ws":
        body = {"ws_stall_s": args.seconds, "ws_stall_scope": args.scope}
        code, out = _call(args.url, "/_simex/faults", body)
    else:
        code, out = _call(args.url, "/_simex/state/save", {})
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0 if code == 200 else 1
