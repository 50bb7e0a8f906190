"""Account settings, flash-close and read-only queries over an Exchange (pure, no I/O)."""

from __future__ import annotations

from decimal import Decimal

from procs.exchange.engine import Exchange
from procs.exchange.model import ZERO, Account, ExchangeError, Order, fmt

__all__ = [
    "account_view",
    "change_leverage",
    "change_margin_mode",
    "change_position_mode",
    "close_positions",
    "history_orders",
    "pending_orders",
    "positions_view",
]


def close_positions(
    ex: Exchange, account: str, *, ts_ms: int, symbol: str = "", position_id: str = ""
) -> list[Order]:
    """Flash-close: one MARKET closing order per matching position."""
    acct = ex.accounts[account]
    targets = [
        p
        for p in acct.positions.values()
        if (not symbol or p.symbol == symbol) and (not position_id or p.position_id == position_id)
    ]
    if position_id and not targets:
        raise ExchangeError(30004, "Position does not exist")
    out = []
    for p in targets:
        if acct.position_mode == "HEDGE":
            side, trade_side = ("BUY" if p.side == "LONG" else "SELL"), "CLOSE"
        else:
            side, trade_side = ("SELL" if p.side == "LONG" else "BUY"), "OPEN"
        out.append(
            ex.place_order(
                account,
                symbol=p.symbol,
                side=side,
                order_type="MARKET",
                qty=p.qty,
                ts_ms=ts_ms,
                trade_side=trade_side,
                position_id=p.position_id,
                reduce_only=True,
            )
        )
    return out


def change_leverage(ex: Exchange, account: str, symbol: str, leverage: int) -> None:
    acct = ex.accounts[account]
    spec = ex.spec(symbol)
    if not spec.min_leverage <= leverage <= spec.max_leverage:
        raise ExchangeError(20005, "Invalid leverage")
    _require_idle(acct, symbol)
    acct.leverage[symbol] = leverage


def change_margin_mode(ex: Exchange, account: str, symbol: str, mode: str) -> None:
    acct = ex.accounts[account]
    ex.spec(symbol)
    if mode.upper() not in ("ISOLATION", "CROSS"):
        raise ExchangeError(10002, "marginMode must be ISOLATION or CROSS")
    _require_idle(acct, symbol)
    acct.margin_mode[symbol] = mode.upper()


def change_position_mode(ex: Exchange, account: str, mode: str) -> None:
    acct = ex.accounts[account]
    if mode.upper() not in ("ONE_WAY", "HEDGE"):
        raise ExchangeError(10002, "positionMode must be ONE_WAY or HEDGE")
    if acct.positions or acct.open_orders:
        raise ExchangeError(20009, "Position exists, can't change position mode")
    acct.position_mode = mode.upper()


def _require_idle(acct: Account, symbol: str) -> None:
    busy = any(o.symbol == symbol for o in acct.open_orders.values()) or any(
        p.symbol == symbol for p in acct.positions.values()
    )
    if busy:
        raise ExchangeError(20006, "Can't change leverage/margin mode with open orders")


def account_view(ex: Exchange, account: str) -> dict[str, object]:
    """``GET /api/v1/futures/account`` data (object form)."""
    acct = ex.accounts[account]
    cross = iso = ZERO
    for p in acct.positions.values():
        u = p.unrealized(ex.mark(p.symbol))
        if p.margin_mode == "ISOLATION":
            iso += u
        else:
            cross += u
    available = acct.available()
    return {
        "marginCoin": "USDT",
        "available": fmt(available),
        "frozen": fmt(acct.frozen()),
        "margin": fmt(acct.margin()),
        "transfer": fmt(max(available, ZERO)),
        "positionMode": acct.position_mode,
        "crossUnrealizedPNL": fmt(cross),
        "isolationUnrealizedPNL": fmt(iso),
        "bonus": "0",
    }


def positions_view(
    ex: Exchange, account: str, symbol: str = "", position_id: str = ""
) -> list[dict[str, object]]:
    acct = ex.accounts[account]
    return [
        p.view(ex.mark(p.symbol))
        for p in acct.positions.values()
        if (not symbol or p.symbol == symbol) and (not position_id or p.position_id == position_id)
    ]


def _in_window(ts: int, start: int | None, end: int | None) -> bool:
    return (start is None or ts >= start) and (end is None or ts <= end)


def pending_orders(
    ex: Exchange,
    account: str,
    *,
    symbol: str = "",
    order_id: str = "",
    client_id: str = "",
    status: str = "",
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[Order]:
    """Open orders, newest first."""
    acct = ex.accounts[account]
    out = [
        o
        for o in acct.open_orders.values()
        if (not symbol or o.symbol == symbol)
        and (not order_id or o.order_id == order_id)
        and (not client_id or o.client_id == client_id)
        and (not status or o.status == status.upper())
        and _in_window(o.ctime, start_ms, end_ms)
    ]
    return sorted(out, key=lambda o: (o.ctime, int(o.order_id)), reverse=True)


def history_orders(
    ex: Exchange,
    account: str,
    *,
    symbol: str = "",
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[Order]:
    """Closed orders, newest first."""
    acct = ex.accounts[account]
    out = [
        o
        for o in acct.orders.values()
        if not o.open
        and (not symbol or o.symbol == symbol)
        and _in_window(o.mtime, start_ms, end_ms)
    ]
    return sorted(out, key=lambda o: (o.mtime, int(o.order_id)), reverse=True)


def parse_decimal(value: object, name: str) -> Decimal:
    """Decimal from a JSON string or number; 10002 naming the field otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ExchangeError(10002, f"{name} must be a number or numeric string")
    try:
        d = Decimal(str(value))
    except ArithmeticError:
        raise ExchangeError(10002, f"{name} is not a number: {value!r}") from None
    if not d.is_finite():
        raise ExchangeError(10002, f"{name} is not finite")
    return d
