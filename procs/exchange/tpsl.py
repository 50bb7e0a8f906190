"""TP/SL orders over positions: place, modify, cancel, trigger on the last trade price.

A triggered TP/SL reports ``FILLED`` (trigger fired, child order placed), as the reference says.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from procs.exchange.model import Account, ExchangeError, PrivateEvent, TpslOrder, iso_ms

if TYPE_CHECKING:
    from procs.exchange.engine import Exchange

__all__ = ["cancel_for_position", "cancel_tpsl", "check_triggers", "modify_tpsl", "place_tpsl"]

FIELDS: Final = (
    "tpPrice",
    "tpStopType",
    "tpOrderType",
    "tpOrderPrice",
    "slPrice",
    "slStopType",
    "slOrderType",
    "slOrderPrice",
    "tpQty",
    "slQty",
)


def _push(ex: Exchange, acct: Account, t: TpslOrder, event: str) -> None:
    pos = next((p for p in acct.positions.values() if p.position_id == t.position_id), None)
    data: dict[str, object] = {
        "event": event,
        "positionId": t.position_id,
        "orderId": t.order_id,
        "symbol": t.symbol,
        "leverage": str(pos.leverage if pos else ""),
        "side": ("BUY" if pos.side == "LONG" else "SELL") if pos else "",
        "positionMode": acct.position_mode,
        "status": t.status,
        "ctime": iso_ms(t.ctime),
        "type": t.kind,
    }
    data.update(t.fields)
    ex.events.append(PrivateEvent(acct.name, "tpsl", data))


def _clean(fields: Mapping[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k in FIELDS:
        v = fields.get(k)
        if v is None or v == "":
            continue
        s = str(v).upper() if k.endswith("Type") else str(v)
        if k.endswith(("Price", "Qty")):
            try:
                d = Decimal(s)
            except ArithmeticError:
                raise ExchangeError(10002, f"{k} is not a number") from None
            if not d.is_finite() or d <= 0:
                raise ExchangeError(30041 if k.endswith("Price") else 10002, f"{k} must be > 0")
        out[k] = s
    return out


def place_tpsl(
    ex: Exchange,
    account: str,
    *,
    symbol: str,
    position_id: str,
    fields: Mapping[str, object],
    ts_ms: int,
    kind: str = "TPSL",
) -> TpslOrder:
    acct = ex.accounts[account]
    ex.spec(symbol)
    if not any(
        p.position_id == position_id and p.symbol == symbol for p in acct.positions.values()
    ):
        raise ExchangeError(30004, "Position does not exist")
    clean = _clean(fields)
    if "tpPrice" not in clean and "slPrice" not in clean:
        raise ExchangeError(10002, "tpPrice or slPrice is required")
    t = TpslOrder(
        order_id=ex.new_id(),
        account=account,
        symbol=symbol,
        position_id=position_id,
        kind=kind,
        ctime=ts_ms,
        mtime=ts_ms,
        fields=clean,
    )
    acct.tpsl[t.order_id] = t
    ex.tpsl_live[symbol] = ex.tpsl_live.get(symbol, 0) + 1
    _push(ex, acct, t, "CREATE")
    return t


def _live(acct: Account, order_id: str) -> TpslOrder:
    t = acct.tpsl.get(order_id)
    if t is None:
        raise ExchangeError(20007, "Order not found")
    if t.status != "NEW":
        raise ExchangeError(10013, "Order status error")
    return t


def modify_tpsl(
    ex: Exchange, account: str, *, order_id: str, fields: Mapping[str, object], ts_ms: int
) -> TpslOrder:
    acct = ex.accounts[account]
    t = _live(acct, order_id)
    t.fields.update(_clean(fields))
    t.mtime = ts_ms
    _push(ex, acct, t, "UPDATE")
    return t


def _finish(ex: Exchange, acct: Account, t: TpslOrder, status: str, ts_ms: int) -> None:
    t.status = status
    t.mtime = ts_ms
    ex.tpsl_live[t.symbol] -= 1
    _push(ex, acct, t, "CLOSE")


def cancel_tpsl(ex: Exchange, account: str, *, order_id: str, ts_ms: int) -> TpslOrder:
    acct = ex.accounts[account]
    t = _live(acct, order_id)
    _finish(ex, acct, t, "CANCELED", ts_ms)
    return t


def cancel_for_position(ex: Exchange, acct: Account, position_id: str, ts_ms: int) -> None:
    for t in list(acct.tpsl.values()):
        if t.position_id == position_id and t.status == "NEW":
            _finish(ex, acct, t, "SYSTEM_CANCELED", ts_ms)


def check_triggers(ex: Exchange, symbol: str, ts_ms: int) -> None:
    """Fire every NEW TP/SL on ``symbol`` whose trigger the last price has crossed."""
    last = ex.last_price.get(symbol)
    if last is None:
        return
    for acct in ex.accounts.values():
        for t in [t for t in acct.tpsl.values() if t.symbol == symbol and t.status == "NEW"]:
            pos = next((p for p in acct.positions.values() if p.position_id == t.position_id), None)
            if pos is None:
                continue
            long = pos.side == "LONG"
            leg = _fired_leg(t.fields, last, long)
            if leg is None:
                continue
            _finish(ex, acct, t, "FILLED", ts_ms)
            _place_child(ex, acct, t, leg, pos.qty, long, ts_ms)


def _fired_leg(fields: Mapping[str, str], last: Decimal, long: bool) -> str | None:
    tp, sl = fields.get("tpPrice"), fields.get("slPrice")
    if tp is not None and (last >= Decimal(tp) if long else last <= Decimal(tp)):
        return "tp"
    if sl is not None and (last <= Decimal(sl) if long else last >= Decimal(sl)):
        return "sl"
    return None


def _place_child(
    ex: Exchange, acct: Account, t: TpslOrder, leg: str, pos_qty: Decimal, long: bool, ts_ms: int
) -> None:
    qty_s = t.fields.get(f"{leg}Qty")
    qty = min(Decimal(qty_s), pos_qty) if qty_s else pos_qty
    otype = t.fields.get(f"{leg}OrderType", "MARKET")
    price_s = t.fields.get(f"{leg}OrderPrice")
    hedge = acct.position_mode == "HEDGE"
    side = ("BUY" if long else "SELL") if hedge else ("SELL" if long else "BUY")
    try:
        ex.place_order(
            acct.name,
            symbol=t.symbol,
            side=side,
            order_type="LIMIT" if otype == "LIMIT" and price_s else "MARKET",
            qty=qty,
            price=Decimal(price_s) if otype == "LIMIT" and price_s else None,
            ts_ms=ts_ms,
            trade_side="CLOSE" if hedge else "OPEN",
            position_id=t.position_id,
            reduce_only=True,
        )
    except ExchangeError:
        t.status = "FAILED"
