"""Funding for paper mode: each local leg pays or receives ``qty × mark × rate`` at the venue's
settlement times, with the rate and the next settlement time polled from the venue's public
``funding_rate/batch`` REST (the WS ``price`` channel is not available to execution: no ring
carries it). Off unless ``[execution.paper] settle_funding = true``.

A positive rate: longs pay shorts. An event's id names the symbol, leg and settlement time, so a
settlement is journaled once even if the process restarts around it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from procs.trading.model import FundingEvent
from procs.trading.positions import PositionSnapshot

MONEY: Final = Decimal("1e-12")


@dataclass(frozen=True, slots=True)
class FundingQuote:
    """The venue's current rate for a symbol and the time it will be settled at."""

    symbol: str
    rate: Decimal
    next_ms: int


class PaperFunding:
    """Keeps the latest quote per symbol and settles the local legs once a quote's time passes."""

    def __init__(self) -> None:
        self._quotes: dict[str, FundingQuote] = {}
        self._settled_ms: dict[str, int] = {}

    def update(self, quotes: Iterable[FundingQuote]) -> None:
        """Take freshly polled quotes (call ``settle`` first: a poll after a settlement time
        already names the next one)."""
        for q in quotes:
            if q.next_ms > self._settled_ms.get(q.symbol, 0):
                self._quotes[q.symbol] = q

    def settle(
        self, now_ms: int, legs: Iterable[PositionSnapshot], marks: Mapping[str, Decimal]
    ) -> list[FundingEvent]:
        """Funding events of every quote whose settlement time has come (each settled once)."""
        due = [q for q in self._quotes.values() if q.next_ms <= now_ms]
        out: list[FundingEvent] = []
        for q in due:
            del self._quotes[q.symbol]
            self._settled_ms[q.symbol] = q.next_ms
            mark = marks.get(q.symbol)
            if mark is None:
                continue  # no price for the symbol: nothing to value the legs at
            for p in legs:
                if p.symbol != q.symbol or not p.qty:
                    continue
                out.append(
                    FundingEvent(
                        event_id=f"paper:{q.symbol}:{p.position_side}:{q.next_ms}",
                        symbol=q.symbol,
                        amount=-(p.qty * mark * q.rate).quantize(MONEY),
                        position_side=p.position_side,
                        ts_ns=q.next_ms * 1_000_000,
                    )
                )
        return out
