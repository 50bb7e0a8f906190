"""The venue: one Exchange plus market statistics (24h ticker, 1-minute candles) and the
hand-off of every change to the push sink. Pure apart from the sink it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Protocol

from procs.exchange.engine import Exchange
from procs.exchange.model import ZERO, TradeEvent
from procs.matching.book import OrderBook

__all__ = ["INTERVALS_MS", "Candle", "PushSink", "Venue"]

MINUTE_MS: Final = 60_000
CANDLES_MAX: Final = 2 * 24 * 60
INTERVALS_MS: Final = {
    "1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240,
    "6h": 360, "8h": 480, "12h": 720, "1d": 1440, "3d": 4320, "1w": 10080, "1M": 43200,
    "1min": 1, "3min": 3, "5min": 5, "15min": 15, "30min": 30, "60min": 60, "1day": 1440,
    "3day": 4320, "1week": 10080, "1month": 43200,
}  # fmt: skip


class PushSink(Protocol):
    """Where changes go (the WS hub); a fake collects them in tests."""

    def private(self, account: str, channel: str, data: dict[str, object]) -> None: ...
    def trades(self, symbol: str, trades: Sequence[TradeEvent]) -> None: ...
    def book_changed(self, symbol: str, book: OrderBook) -> None: ...


@dataclass(slots=True)
class Candle:
    time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    base_vol: Decimal = ZERO
    quote_vol: Decimal = ZERO


@dataclass(slots=True)
class _Stats:
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    last: Decimal | None = None
    base_vol: Decimal = ZERO
    quote_vol: Decimal = ZERO


class Venue:
    """Owns the Exchange and everything derived from its trades."""

    def __init__(self, ex: Exchange, sink: PushSink, now_ms: Callable[[], int]) -> None:
        self.ex = ex
        self.sink = sink
        self.now_ms = now_ms
        self.stats = {s: _Stats() for s in ex.specs}
        self.candles: dict[str, list[Candle]] = {s: [] for s in ex.specs}
        self._seen = {s: b.version for s, b in ex.books.items()}
        self.pushed_private_total = 0

    def flush(self) -> None:
        """Hand every pending private event, trade and book change to the sink."""
        events, trades = self.ex.drain()
        for ev in events:
            self.sink.private(ev.account, ev.channel, ev.data)
        self.pushed_private_total += len(events)
        if trades:
            start = 0
            for i in range(1, len(trades) + 1):
                if i == len(trades) or trades[i].symbol != trades[start].symbol:
                    chunk = trades[start:i]
                    self._account(chunk)
                    self.sink.trades(chunk[0].symbol, chunk)
                    start = i
        for sym, book in self.ex.books.items():
            if book.version != self._seen[sym]:
                self._seen[sym] = book.version
                self.sink.book_changed(sym, book)

    def _account(self, trades: Sequence[TradeEvent]) -> None:
        sym = trades[0].symbol
        st = self.stats[sym]
        candles = self.candles[sym]
        for t in trades:
            if st.open is None:
                st.open = st.high = st.low = t.price
            st.high = max(st.high or t.price, t.price)
            st.low = min(st.low or t.price, t.price)
            st.last = t.price
            st.base_vol += t.qty
            st.quote_vol += t.qty * t.price
            minute = t.ts_ms - t.ts_ms % MINUTE_MS
            if not candles or candles[-1].time_ms != minute:
                candles.append(Candle(minute, t.price, t.price, t.price, t.price))
                del candles[:-CANDLES_MAX]
            c = candles[-1]
            c.high, c.low, c.close = max(c.high, t.price), min(c.low, t.price), t.price
            c.base_vol += t.qty
            c.quote_vol += t.qty * t.price

    def klines(
        self, symbol: str, interval: str, limit: int, start_ms: int | None, end_ms: int | None
    ) -> list[Candle]:
        """Candles of ``interval`` built from 1-minute candles, oldest first."""
        width = INTERVALS_MS[interval] * MINUTE_MS
        out: list[Candle] = []
        for c in self.candles[symbol]:
            bucket = c.time_ms - c.time_ms % width
            if (start_ms is not None and bucket < start_ms - width) or (
                end_ms is not None and bucket > end_ms
            ):
                continue
            if out and out[-1].time_ms == bucket:
                o = out[-1]
                o.high, o.low, o.close = max(o.high, c.high), min(o.low, c.low), c.close
                o.base_vol += c.base_vol
                o.quote_vol += c.quote_vol
            else:
                out.append(Candle(bucket, c.open, c.high, c.low, c.close, c.base_vol, c.quote_vol))
        return out[-limit:]

    def ticker(self, symbol: str) -> dict[str, Decimal]:
        st = self.stats[symbol]
        mark = self.ex.mark(symbol) or ZERO
        last = st.last or mark
        return {
            "open": st.open or last,
            "high": st.high or last,
            "low": st.low or last,
            "last": last,
            "mark": mark,
            "base_vol": st.base_vol,
            "quote_vol": st.quote_vol,
        }
