"""Funding settlement in simex: at every funding time each open position pays or receives
``qty × mark × rate`` (a positive rate: longs pay shorts), booked to the wallet and to the
position's cumulative ``funding`` (received > 0, paid < 0, like ``realizedPNL``).

Pure like the engine: the caller gives the time and drains the pushes it appends.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from procs.exchange.engine import Exchange
from procs.exchange.model import ZERO, PrivateEvent, fmt
from procs.matching.fees import funding_amount

__all__ = ["HISTORY_MAX", "next_funding_ms", "settle_funding"]

HISTORY_MAX: Final = 200  # settlements kept per symbol for get_funding_rate_history


def next_funding_ms(ex: Exchange, now_ms: int) -> int:
    """The next settlement time after ``now_ms`` (multiples of the interval since the epoch)."""
    period = ex.funding_interval_ms
    return now_ms - now_ms % period + period


def settle_funding(ex: Exchange, ts_ms: int, rates: dict[str, Decimal] | None = None) -> int:
    """Settle every open position at its symbol's rate (``rates`` overrides); return how many."""
    rates = {**ex.funding_rate, **(rates or {})}
    n, touched = 0, set()
    for sym in ex.specs:
        mark = ex.mark(sym)
        rate = rates.get(sym, ZERO)
        if mark is None:
            continue
        hist = ex.funding_history.setdefault(sym, [])
        hist.append({"fundingRate": fmt(rate), "fundingTime": str(ts_ms), "markPrice": fmt(mark)})
        del hist[:-HISTORY_MAX]
        for acct in ex.accounts.values():
            for pos in acct.positions.values():
                if pos.symbol != sym or pos.qty <= 0:
                    continue
                amount = funding_amount(pos.qty if pos.side == "LONG" else -pos.qty, mark, rate)
                pos.funding += amount
                # never back in time: a settlement runs a little after its time, and a trade
                # in between has stamped the position later (a reader that keeps the newest
                # figure by mtime would take this one for an old one and never see its funding)
                pos.mtime = max(pos.mtime, ts_ms)
                acct.wallet += amount
                acct.funding_total += amount
                ex.events.append(PrivateEvent(acct.name, "position", pos.push("UPDATE", mark)))
                touched.add(acct.name)
                n += 1
    for name in sorted(touched):
        ex.notify_balance(name)
    return n
