"""Backtest figures: PnL split (spread capture, fees, funding, the rest), markouts, fill ratio,
order and cancel rates, turnover, drawdown, daily Sharpe and Sortino. Pure numpy/Decimal."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

import numpy as np

from procs.matching.engine import FillReport
from shm.records import Records

__all__ = ["MidSeries", "attribution", "daily_ratios", "drawdown", "order_stats"]

NS: Final = 1_000_000_000
DAY_NS: Final = 86_400 * NS


class MidSeries:
    """Mid price per symbol over venue time, from the replayed books."""

    def __init__(self, books: Records, symbol_ids: dict[str, int]) -> None:
        self._t: dict[str, np.ndarray] = {}
        self._m: dict[str, np.ndarray] = {}
        ok = (books["n_bids"] > 0) & (books["n_asks"] > 0)
        for sym, sid in symbol_ids.items():
            sel = ok & (books["symbol_id"] == sid)
            t = np.minimum(books["ts_event_ns"][sel], books["ts_recv_ns"][sel])
            order = np.argsort(t, kind="stable")
            self._t[sym] = t[order]
            self._m[sym] = ((books["bid_px"][sel, 0] + books["ask_px"][sel, 0]) / 2)[order]

    def at(self, symbol: str, t: np.ndarray) -> np.ndarray:
        """The last mid at or before each time (NaN before the first book)."""
        ts, ms = self._t[symbol], self._m[symbol]
        i = np.searchsorted(ts, t, side="right") - 1
        out = np.where(i >= 0, ms[np.clip(i, 0, None)] if ms.size else np.nan, np.nan)
        return np.asarray(out, dtype=np.float64)


def attribution(
    fills: Sequence[FillReport],
    funding: Sequence[tuple[int, str, Decimal]],
    mids: MidSeries,
    horizons_s: Sequence[float],
    net: Decimal,
) -> dict[str, Any]:
    """Net PnL split: spread capture (fill price against the mid at the fill), fees, funding and
    the rest (inventory: price moves on what was held); markouts of every fill at each horizon
    (mid that much later against the fill price, signed by side)."""
    fees = sum((f.fee for f in fills), Decimal(0))
    fund = sum((a for _, _, a in funding), Decimal(0))
    spread = 0.0
    marks: dict[str, float] = {f"{h:g}s": 0.0 for h in horizons_s}
    for sym in sorted({f.symbol for f in fills}):
        fs = [f for f in fills if f.symbol == sym]
        t = np.array([f.ts_ns for f in fs], dtype=np.int64)
        px = np.array([float(f.price) for f in fs])
        sq = np.array([float(f.qty) if f.is_buy else -float(f.qty) for f in fs])
        spread += float(np.nansum(sq * (mids.at(sym, t) - px)))
        for h in horizons_s:
            later = mids.at(sym, t + int(h * NS))
            marks[f"{h:g}s"] += float(np.nansum(sq * (later - px)))
    rest = float(net) - spread + float(fees) - float(fund)
    return {
        "net": _r(float(net)),
        "spread_capture": _r(spread),
        "fees": _r(-float(fees)),
        "funding": _r(float(fund)),
        "inventory_and_rest": _r(rest),
        "markouts": {k: _r(v) for k, v in marks.items()},
        "maker_fills": sum(1 for f in fills if f.maker),
        "taker_fills": sum(1 for f in fills if not f.maker),
        "turnover_usdt": _r(float(sum((f.qty * f.price for f in fills), Decimal(0)))),
    }


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Drawdown below the running peak (>= 0) at each sample."""
    if equity.size == 0:
        return equity
    return np.asarray(np.maximum.accumulate(equity) - equity, dtype=np.float64)


def daily_ratios(t_ns: np.ndarray, equity: np.ndarray, capital: float) -> dict[str, Any]:
    """Annualised (365 days) Sharpe and Sortino of daily returns on ``capital`` (UTC days)."""
    if t_ns.size == 0:
        return {"days": 0, "sharpe": None, "sortino": None, "note": "no equity samples"}
    day = t_ns // DAY_NS
    last = np.flatnonzero(np.r_[day[1:] != day[:-1], True])
    closes = np.r_[0.0, equity[last]]
    rets = np.diff(closes) / capital
    out: dict[str, Any] = {"days": int(rets.size), "daily_returns": [_r(x) for x in rets]}
    if rets.size < 2:
        out.update(sharpe=None, sortino=None, note="needs at least two UTC days of data")
        return out
    sd = float(np.std(rets, ddof=1))
    down = rets[rets < 0]
    dd = float(np.sqrt(np.mean(down**2))) if down.size else 0.0
    mean = float(np.mean(rets))
    out["sharpe"] = _r(mean / sd * math.sqrt(365)) if sd > 0 else None
    out["sortino"] = _r(mean / dd * math.sqrt(365)) if dd > 0 else None
    return out


def order_stats(
    intents: Sequence[dict[str, Any]], counters: dict[str, int], span_ns: int
) -> dict[str, Any]:
    minutes = max(span_ns / (60 * NS), 1e-9)
    sent = counters.get("orders_sent_total", 0)
    cancels = counters.get("cancels_sent_total", 0)
    filled = [i for i in intents if Decimal(i["filled_qty"]) > 0]
    qty = sum((Decimal(i["qty"]) for i in intents), Decimal(0))
    got = sum((Decimal(i["filled_qty"]) for i in intents), Decimal(0))
    return {
        "intents": len(intents),
        "sent": sent,
        "cancels_sent": cancels,
        "refusals": counters.get("refusals_total", 0),
        "venue_errors": counters.get("venue_errors_total", 0),
        "fills": counters.get("fills_total", 0),
        "orders_with_fills": len(filled),
        "fill_ratio_orders": _r(len(filled) / sent) if sent else None,
        "fill_ratio_qty": _r(float(got / qty)) if qty else None,
        "orders_per_min": _r(sent / minutes),
        "cancels_per_min": _r(cancels / minutes),
        "by_tag": {
            t: sum(1 for i in intents if i["tag"] == t) for t in sorted({i["tag"] for i in intents})
        },
    }


def _r(x: float) -> float:
    """Rounded for a stable, readable JSON (9 significant decimals)."""
    return float(f"{x:.9g}") if math.isfinite(x) else 0.0
