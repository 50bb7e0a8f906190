"""The futures REST endpoints of reference §3.2 as plain functions over a Venue.

Each handler takes (venue, account, params, ts_ms) and returns the envelope's ``data``; business
errors raise ExchangeError. ``ENDPOINTS`` maps path -> (method, private, rate class, handler).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from procs.exchange import tpsl
from procs.exchange.model import ExchangeError, Order, fmt
from procs.simex import admin
from procs.simex.admin import parse_decimal
from procs.simex.venue import INTERVALS_MS, Venue

__all__ = ["ENDPOINTS", "Handler"]

Params = dict[str, Any]
Handler = Callable[[Venue, str, Params, int], object]
P: Final = "/api/v1/futures"


def _s(q: Params, name: str, required: bool = False) -> str:
    v = q.get(name)
    if v is None or v == "":
        if required:
            raise ExchangeError(10002, f"{name} is required")
        return ""
    if not isinstance(v, str | int | float) or isinstance(v, bool):
        raise ExchangeError(10002, f"{name} must be a string")
    return str(v)


def _int(q: Params, name: str, default: int | None = None) -> int | None:
    v = q.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ExchangeError(10002, f"{name} must be an integer") from None


def _bool(q: Params, name: str) -> bool:
    v = q.get(name, False)
    return v is True or (isinstance(v, str) and v.lower() == "true")


def _symbols(v: Venue, q: Params) -> list[str]:
    names = [s for s in _s(q, "symbols").split(",") if s]
    for s in names:
        v.ex.spec(s)
    return names or list(v.ex.specs)


def _page(items: list[Any], q: Params, key: str, default_limit: int = 10) -> dict[str, object]:
    skip = max(0, _int(q, "skip", 0) or 0)
    limit = min(100, max(1, _int(q, "limit", default_limit) or default_limit))
    views = [i.view() if isinstance(i, Order) else i for i in items[skip : skip + limit]]
    return {key: views, "total": len(items)}


# ---- market -----------------------------------------------------------------------------------


def trading_pairs(v: Venue, _a: str, q: Params, _t: int) -> object:
    out = []
    for name in _symbols(v, q):
        s = v.ex.specs[name]
        out.append(
            {
                "symbol": s.symbol, "base": s.base, "quote": s.quote,
                "minTradeVolume": fmt(s.min_qty), "minBuyPriceOffset": "-0.95",
                "maxSellPriceOffset": "100", "maxLimitOrderVolume": fmt(s.max_limit_qty),
                "maxMarketOrderVolume": fmt(s.max_market_qty), "basePrecision": s.base_precision,
                "quotePrecision": s.quote_precision, "maxLeverage": s.max_leverage,
                "minLeverage": s.min_leverage, "defaultLeverage": s.default_leverage,
                "defaultMarginMode": 1, "priceProtectScope": "0.02", "symbolStatus": "OPEN",
            }
        )  # fmt: skip
    return out


def tickers(v: Venue, _a: str, q: Params, _t: int) -> object:
    out = []
    for name in _symbols(v, q):
        t = v.ticker(name)
        out.append(
            {
                "symbol": name, "markPrice": fmt(t["mark"]), "lastPrice": fmt(t["last"]),
                "open": fmt(t["open"]), "last": fmt(t["last"]), "quoteVol": fmt(t["quote_vol"]),
                "baseVol": fmt(t["base_vol"]), "high": fmt(t["high"]), "low": fmt(t["low"]),
            }
        )  # fmt: skip
    return out


def depth(v: Venue, _a: str, q: Params, _t: int) -> object:
    sym = _s(q, "symbol", True)
    v.ex.spec(sym)
    # the docs list 1|5|15|50|max, the official Python demo sends 100: any count is taken
    limit = _s(q, "limit") or "max"
    if limit != "max" and not (limit.isascii() and limit.isdigit() and 0 < int(limit) <= 1000):
        raise ExchangeError(10002, "Parameter error: limit must be 1 to 1000 or max")
    bids, asks = v.ex.books[sym].depth(0 if limit == "max" else int(limit))
    return {
        "asks": [[fmt(p), fmt(x)] for p, x in asks],
        "bids": [[fmt(p), fmt(x)] for p, x in bids],
    }


def kline(v: Venue, _a: str, q: Params, _t: int) -> object:
    sym = _s(q, "symbol", True)
    v.ex.spec(sym)
    interval = _s(q, "interval", True)
    if interval not in INTERVALS_MS:
        raise ExchangeError(10002, f"interval not supported: {interval}")
    limit = min(200, max(1, _int(q, "limit", 100) or 100))
    kind = (_s(q, "type") or "LAST_PRICE").upper()
    candles = v.klines(sym, interval, limit, _int(q, "startTime"), _int(q, "endTime"))
    # the reference's examples put the coin volume in quoteVol and the USDT value in baseVol
    return [
        {
            "open": fmt(c.open), "high": fmt(c.high), "low": fmt(c.low), "close": fmt(c.close),
            "time": c.time_ms, "quoteVol": fmt(c.base_vol), "baseVol": fmt(c.quote_vol),
            "type": kind,
        }
        for c in candles
    ]  # fmt: skip


def _funding(v: Venue, sym: str, ts: int) -> dict[str, object]:
    t = v.ticker(sym)
    period = v.ex.funding_interval_ms
    return {
        "symbol": sym, "markPrice": fmt(t["mark"]), "lastPrice": fmt(t["last"]),
        "fundingRate": fmt(v.ex.funding_rate[sym]), "fundingInterval": period // 3_600_000,
        "nextFundingTime": str(ts - ts % period + period),
    }  # fmt: skip


def funding_rate(v: Venue, _a: str, q: Params, ts: int) -> object:
    sym = _s(q, "symbol", True)
    v.ex.spec(sym)
    return [_funding(v, sym, ts)]


def funding_batch(v: Venue, _a: str, _q: Params, ts: int) -> object:
    return [_funding(v, s, ts) for s in v.ex.specs]


def funding_history(v: Venue, _a: str, q: Params, _t: int) -> object:
    sym = _s(q, "symbol", True)
    v.ex.spec(sym)
    return list(reversed(v.ex.funding_history.get(sym, [])))


# ---- account ----------------------------------------------------------------------------------


def account(v: Venue, a: str, q: Params, _t: int) -> object:
    if _s(q, "marginCoin", True).upper() != "USDT":
        raise ExchangeError(10002, "marginCoin must be USDT")
    return admin.account_view(v.ex, a)


def leverage_margin_mode(v: Venue, a: str, q: Params, _t: int) -> object:
    sym = _s(q, "symbol", True)
    v.ex.spec(sym)
    acct = v.ex.accounts[a]
    return {
        "symbol": sym,
        "marginCoin": "USDT",
        "leverage": v.ex.leverage(acct, sym),
        "marginMode": v.ex.margin_mode(acct, sym),
    }


def change_leverage(v: Venue, a: str, q: Params, _t: int) -> object:
    sym = _s(q, "symbol", True)
    lev = _int(q, "leverage")
    if lev is None:
        raise ExchangeError(10002, "leverage is required")
    admin.change_leverage(v.ex, a, sym, lev)
    return [{"marginCoin": "USDT", "leverage": lev, "symbol": sym}]


def change_margin_mode(v: Venue, a: str, q: Params, _t: int) -> object:
    sym = _s(q, "symbol", True)
    mode = _s(q, "marginMode", True)
    admin.change_margin_mode(v.ex, a, sym, mode)
    return [{"marginMode": mode.upper(), "symbol": sym, "marginCoin": "USDT"}]


def change_position_mode(v: Venue, a: str, q: Params, _t: int) -> object:
    mode = _s(q, "positionMode", True)
    admin.change_position_mode(v.ex, a, mode)
    return [{"positionMode": mode.upper()}]


def adjust_margin(v: Venue, a: str, q: Params, _t: int) -> object:
    sym = _s(q, "symbol", True)
    amount = parse_decimal(q.get("amount"), "amount")
    acct = v.ex.accounts[a]
    pid = _s(q, "positionId")
    pos = next(
        (
            p
            for p in acct.positions.values()
            if p.symbol == sym and (not pid or p.position_id == pid)
        ),
        None,
    )
    if pos is None:
        raise ExchangeError(30004, "Position does not exist")
    if amount > acct.available() or pos.margin + amount <= 0:
        raise ExchangeError(20008, "Insufficient amount")
    pos.margin += amount
    v.ex.notify_balance(a)
    return None


# ---- trade ------------------------------------------------------------------------------------

_TPSL_KEYS: Final = tpsl.FIELDS[:8]


def _place(v: Venue, a: str, q: Params, ts: int, symbol: str) -> Order:
    price = q.get("price")
    return v.ex.place_order(
        a,
        symbol=symbol,
        side=_s(q, "side", True),
        order_type=_s(q, "orderType", True),
        qty=parse_decimal(q.get("qty"), "qty"),
        price=None if price in (None, "") else parse_decimal(price, "price"),
        effect=_s(q, "effect") or "GTC",
        trade_side=_s(q, "tradeSide"),
        position_id=_s(q, "positionId"),
        reduce_only=_bool(q, "reduceOnly"),
        client_id=_s(q, "clientId"),
        tpsl={k: str(q[k]) for k in _TPSL_KEYS if q.get(k) not in (None, "")},
        ts_ms=ts,
    )


def place_order(v: Venue, a: str, q: Params, ts: int) -> object:
    o = _place(v, a, q, ts, _s(q, "symbol", True))
    return {"orderId": o.order_id, "clientId": o.client_id}


def batch_order(v: Venue, a: str, q: Params, ts: int) -> object:
    sym = _s(q, "symbol", True)
    orders = q.get("orderList")
    if not isinstance(orders, list) or not 1 <= len(orders) <= 20:
        raise ExchangeError(10002, "orderList must hold 1 to 20 orders")
    ok, bad = [], []
    for item in orders:
        if not isinstance(item, dict):
            raise ExchangeError(10002, "orderList items must be objects")
        try:
            o = _place(v, a, item, ts, sym)
            ok.append({"orderId": o.order_id, "clientId": o.client_id})
        except ExchangeError as e:
            bad.append(
                {"clientId": str(item.get("clientId", "")), "errorMsg": e.msg, "errorCode": e.code}
            )
    return {"successList": ok, "failureList": bad}


def modify_order(v: Venue, a: str, q: Params, ts: int) -> object:
    o = v.ex.modify_order(
        a,
        order_id=_s(q, "orderId"),
        client_id=_s(q, "clientId"),
        qty=parse_decimal(q.get("qty"), "qty"),
        price=parse_decimal(q.get("price"), "price"),
        ts_ms=ts,
    )
    return {"orderId": o.order_id, "clientId": o.client_id}


def cancel_orders(v: Venue, a: str, q: Params, ts: int) -> object:
    sym = _s(q, "symbol", True)
    v.ex.spec(sym)
    items = q.get("orderList")
    if not isinstance(items, list) or not items:
        raise ExchangeError(10002, "orderList is required")
    ok, bad = [], []
    for item in items:
        if not isinstance(item, dict):
            raise ExchangeError(10002, "orderList items must be objects")
        oid = str(item.get("orderId") or item.get("id") or "")
        cid = str(item.get("clientId") or "")
        try:
            o = v.ex.cancel_order(a, order_id=oid, client_id=cid, ts_ms=ts)
            ok.append({"orderId": o.order_id, "clientId": o.client_id})
        except ExchangeError as e:
            bad.append({"orderId": oid, "clientId": cid, "errorMsg": e.msg, "errorCode": e.code})
    return {"successList": ok, "failureList": bad}


def cancel_all(v: Venue, a: str, q: Params, ts: int) -> object:
    sym = _s(q, "symbol")
    if sym:
        v.ex.spec(sym)
    done = v.ex.cancel_all(a, symbol=sym, ts_ms=ts)
    return {
        "successList": [{"orderId": o.order_id, "clientId": o.client_id} for o in done],
        "failureList": [],
    }


def close_all(v: Venue, a: str, q: Params, ts: int) -> object:
    done = admin.close_positions(v.ex, a, symbol=_s(q, "symbol"), ts_ms=ts)
    return {"successList": [{"orderId": o.order_id} for o in done], "failureList": []}


def flash_close(v: Venue, a: str, q: Params, ts: int) -> object:
    pid = _s(q, "positionId", True)
    done = admin.close_positions(v.ex, a, position_id=pid, ts_ms=ts)
    return {"positionId": pid, "orderId": done[0].order_id if done else ""}


def order_detail(v: Venue, a: str, q: Params, _t: int) -> object:
    oid, cid = _s(q, "orderId"), _s(q, "clientId")
    if not oid and not cid:
        raise ExchangeError(10002, "orderId or clientId is required")
    return v.ex.find_order(v.ex.accounts[a], oid, cid).view()


def pending_orders(v: Venue, a: str, q: Params, _t: int) -> object:
    items = admin.pending_orders(
        v.ex, a, symbol=_s(q, "symbol"), order_id=_s(q, "orderId"), client_id=_s(q, "clientId"),
        status=_s(q, "status"), start_ms=_int(q, "startTime"), end_ms=_int(q, "endTime"),
    )  # fmt: skip
    return _page(items, q, "orderList")


def history_orders(v: Venue, a: str, q: Params, _t: int) -> object:
    items = admin.history_orders(
        v.ex, a, symbol=_s(q, "symbol"), start_ms=_int(q, "startTime"), end_ms=_int(q, "endTime")
    )
    return _page(items, q, "orderList")


def history_trades(v: Venue, a: str, q: Params, _t: int) -> object:
    sym, oid = _s(q, "symbol"), _s(q, "orderId")
    fills = [
        f
        for f in reversed(v.ex.accounts[a].fills)
        if (not sym or f["symbol"] == sym) and (not oid or f["orderId"] == oid)
    ]
    return _page(fills, q, "tradeList")


# ---- positions --------------------------------------------------------------------------------


def pending_positions(v: Venue, a: str, q: Params, _t: int) -> object:
    return admin.positions_view(v.ex, a, _s(q, "symbol"), _s(q, "positionId"))


def history_positions(v: Venue, a: str, q: Params, _t: int) -> object:
    sym = _s(q, "symbol")
    hist = [
        p.view(None)
        for p in reversed(v.ex.accounts[a].position_history)
        if not sym or p.symbol == sym
    ]
    return _page(hist, q, "positionList")


def position_tiers(v: Venue, _a: str, q: Params, _t: int) -> object:
    sym = _s(q, "symbol", True)
    spec = v.ex.spec(sym)
    return [
        {
            "symbol": sym, "level": 1, "startValue": "0", "endValue": "1000000",
            "leverage": spec.max_leverage, "maintenanceMarginRate": "0.004",
        }
    ]  # fmt: skip


# ---- TP/SL ------------------------------------------------------------------------------------


def tpsl_place(v: Venue, a: str, q: Params, ts: int) -> object:
    t = tpsl.place_tpsl(
        v.ex,
        a,
        symbol=_s(q, "symbol", True),
        position_id=_s(q, "positionId", True),
        fields=q,
        ts_ms=ts,
    )
    return {"orderId": t.order_id}


def tpsl_place_position(v: Venue, a: str, q: Params, ts: int) -> object:
    t = tpsl.place_tpsl(
        v.ex, a, symbol=_s(q, "symbol", True), position_id=_s(q, "positionId", True),
        fields=q, ts_ms=ts, kind="POSITION_TPSL",
    )  # fmt: skip
    return {"orderId": t.order_id}


def tpsl_modify(v: Venue, a: str, q: Params, ts: int) -> object:
    t = tpsl.modify_tpsl(v.ex, a, order_id=_s(q, "orderId", True), fields=q, ts_ms=ts)
    return {"orderId": t.order_id}


def tpsl_modify_position(v: Venue, a: str, q: Params, ts: int) -> object:
    pid = _s(q, "positionId", True)
    acct = v.ex.accounts[a]
    t = next(
        (
            t
            for t in acct.tpsl.values()
            if t.position_id == pid and t.status == "NEW" and t.kind == "POSITION_TPSL"
        ),
        None,
    )
    if t is None:
        return tpsl_place_position(v, a, q, ts)
    tpsl.modify_tpsl(v.ex, a, order_id=t.order_id, fields=q, ts_ms=ts)
    return {"orderId": t.order_id}


def tpsl_cancel(v: Venue, a: str, q: Params, ts: int) -> object:
    t = tpsl.cancel_tpsl(v.ex, a, order_id=_s(q, "orderId", True), ts_ms=ts)
    return {"orderId": t.order_id}


def _tpsl_list(v: Venue, a: str, q: Params, live: bool) -> list[dict[str, object]]:
    sym, pid = _s(q, "symbol"), _s(q, "positionId")
    out = []
    for t in reversed(v.ex.accounts[a].tpsl.values()):
        if (
            (t.status == "NEW") != live
            or (sym and t.symbol != sym)
            or (pid and t.position_id != pid)
        ):
            continue
        spec = v.ex.specs[t.symbol]
        out.append(t.view(spec.base, spec.quote))
    return out


def tpsl_pending(v: Venue, a: str, q: Params, _t: int) -> object:
    return _tpsl_list(v, a, q, True)


def tpsl_history(v: Venue, a: str, q: Params, _t: int) -> object:
    return _page(_tpsl_list(v, a, q, False), q, "orderList")


# path -> (method, private, rate class, handler); rate class "pub" (per IP), "std", "slow"
ENDPOINTS: Final[dict[str, tuple[str, bool, str, Handler]]] = {
    f"{P}/market/trading_pairs": ("GET", False, "pub", trading_pairs),
    f"{P}/market/tickers": ("GET", False, "pub", tickers),
    f"{P}/market/depth": ("GET", False, "pub", depth),
    f"{P}/market/kline": ("GET", False, "pub", kline),
    f"{P}/market/funding_rate": ("GET", False, "pub", funding_rate),
    f"{P}/market/funding_rate/batch": ("GET", False, "pub", funding_batch),
    f"{P}/market/get_funding_rate_history": ("GET", False, "pub", funding_history),
    f"{P}/account": ("GET", True, "std", account),
    f"{P}/account/get_leverage_margin_mode": ("GET", True, "std", leverage_margin_mode),
    f"{P}/account/change_leverage": ("POST", True, "std", change_leverage),
    f"{P}/account/change_margin_mode": ("POST", True, "std", change_margin_mode),
    f"{P}/account/change_position_mode": ("POST", True, "std", change_position_mode),
    f"{P}/account/adjust_position_margin": ("POST", True, "std", adjust_margin),
    f"{P}/trade/place_order": ("POST", True, "std", place_order),
    f"{P}/trade/batch_order": ("POST", True, "slow", batch_order),
    f"{P}/trade/modify_order": ("POST", True, "std", modify_order),
    f"{P}/trade/cancel_orders": ("POST", True, "slow", cancel_orders),
    f"{P}/trade/cancel_all_orders": ("POST", True, "std", cancel_all),
    f"{P}/trade/close_all_position": ("POST", True, "std", close_all),
    f"{P}/trade/flash_close_position": ("POST", True, "std", flash_close),
    f"{P}/trade/get_order_detail": ("GET", True, "std", order_detail),
    f"{P}/trade/get_pending_orders": ("GET", True, "std", pending_orders),
    f"{P}/trade/get_history_orders": ("GET", True, "std", history_orders),
    f"{P}/trade/get_history_trades": ("GET", True, "std", history_trades),
    f"{P}/position/get_pending_positions": ("GET", True, "std", pending_positions),
    f"{P}/position/get_history_positions": ("GET", True, "std", history_positions),
    f"{P}/position/get_position_tiers": ("GET", True, "std", position_tiers),
    f"{P}/tpsl/place_order": ("POST", True, "std", tpsl_place),
    f"{P}/tpsl/position/place_order": ("POST", True, "std", tpsl_place_position),
    f"{P}/tpsl/modify_order": ("POST", True, "std", tpsl_modify),
    f"{P}/tpsl/position/modify_order": ("POST", True, "std", tpsl_modify_position),
    f"{P}/tpsl/cancel_order": ("POST", True, "std", tpsl_cancel),
    f"{P}/tpsl/get_pending_orders": ("GET", True, "std", tpsl_pending),
    f"{P}/tpsl/get_history_orders": ("GET", True, "std", tpsl_history),
}
