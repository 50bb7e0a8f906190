"""Seeded stochastic order flow: limit adds, cancels and market takes around a drifting value.

Pure and reproducible: the same symbols, seed and times give the same actions. simex applies the
actions to its shared books; ``events_until`` runs them through a private engine offline (ML
captures) and yields top-of-book snapshots and trades.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Protocol

from procs.exchange.engine import Exchange
from procs.exchange.model import SymbolSpec

TAKE_MU = 0.0  # log-mean of a take's size in lots (resting orders: 1.0)
CANCEL_P = 0.3  # cancel probability once we rest CANCEL_AT x levels orders
CANCEL_AT = 10
PRUNE_EVERY = 64  # actions between sweeps of filled orders out of our resting list

__all__ = [
    "Action",
    "AddAction",
    "BookSnapshot",
    "BookView",
    "CancelAction",
    "GenSymbol",
    "MarketGenerator",
    "MdEvent",
    "TakeAction",
    "TradePrint",
    "apply_action",
]


@dataclass(frozen=True, slots=True)
class AddAction:
    ts_ns: int
    symbol: str
    oid: str
    is_buy: bool
    price: Decimal
    qty: Decimal


@dataclass(frozen=True, slots=True)
class CancelAction:
    ts_ns: int
    symbol: str
    oid: str


@dataclass(frozen=True, slots=True)
class TakeAction:
    ts_ns: int
    symbol: str
    is_buy: bool
    qty: Decimal


Action = AddAction | CancelAction | TakeAction


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    ts_ns: int
    symbol: str
    bids: tuple[tuple[Decimal, Decimal], ...]  # best first
    asks: tuple[tuple[Decimal, Decimal], ...]


@dataclass(frozen=True, slots=True)
class TradePrint:
    ts_ns: int
    symbol: str
    price: Decimal
    qty: Decimal
    side: str  # taker side: buy / sell


MdEvent = BookSnapshot | TradePrint


class BookView(Protocol):
    def best_bid(self) -> Decimal | None: ...
    def best_ask(self) -> Decimal | None: ...
    def __contains__(self, oid: object) -> bool: ...
    def remaining(self, oid: str) -> Decimal: ...
    def available(self, is_buy: bool, limit: Decimal | None) -> Decimal: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class GenSymbol:
    symbol: str
    start_price: Decimal
    tick: Decimal
    min_qty: Decimal
    step: Decimal
    volatility_bps_per_s: float = 3.0
    lot_qty: Decimal | None = None  # typical order = a few lots; None: min_qty


@dataclass(slots=True)
class _State:
    cfg: GenSymbol
    rng: random.Random
    fair: float
    next_ns: int
    live: list[str] = field(default_factory=list)  # our resting oids (some may have filled)
    live_bids: int = 0  # how many of ``live`` are bids
    burst_left: int = 0
    seq: int = 0
    steps: int = 0


class MarketGenerator:
    """Order flow for several symbols; each symbol has its own seeded random stream."""

    def __init__(
        self,
        symbols: Sequence[GenSymbol],
        seed: int,
        *,
        events_per_s: float = 200.0,
        levels: int = 20,
        burst_prob: float = 0.02,
        trade_frac: float = 0.15,
        start_ns: int = 0,
    ) -> None:
        if events_per_s <= 0:
            raise ValueError(f"events_per_s must be positive, was {events_per_s}")
        # bursts run at 10x for ~35 events; scale the base rate so the mean is events_per_s
        mean_factor = (1 / burst_prob + 35) / (1 / burst_prob + 3.5) if burst_prob > 0 else 1.0
        self._rate = events_per_s / mean_factor
        self._levels = levels
        self._burst_prob = burst_prob
        self._trade_frac = trade_frac
        self._states: dict[str, _State] = {}
        for i, s in enumerate(symbols):
            rng = random.Random(f"{seed}:{i}:{s.symbol}")
            self._states[s.symbol] = _State(s, rng, float(s.start_price), start_ns)
        self._books: dict[str, Exchange] | None = None

    @property
    def symbols(self) -> list[str]:
        return list(self._states)

    @property
    def time_ns(self) -> int:
        """Generator time: every action before it has been produced."""
        return min(st.next_ns for st in self._states.values())

    def skip_to(self, t_ns: int) -> None:
        """Drop the time up to ``t_ns`` without generating (paused market data)."""
        for st in self._states.values():
            st.next_ns = max(st.next_ns, t_ns)

    def actions_until(self, t_ns: int, books: Mapping[str, BookView]) -> Iterator[Action]:
        """Yield every action due before ``t_ns`` in time order, one at a time.

        Lazy on purpose: each action reads the books it quotes around, so the caller applies
        an action before asking for the next one.
        """
        states = list(self._states.values())
        heap = [(st.next_ns, i) for i, st in enumerate(states) if st.next_ns < t_ns]
        heapq.heapify(heap)
        while heap:
            _, i = heapq.heappop(heap)
            st = states[i]
            action = self._one(st, books[st.cfg.symbol])
            st.next_ns += self._gap_ns(st)
            if st.next_ns < t_ns:
                heapq.heappush(heap, (st.next_ns, i))
            yield action

    def events_until(self, t_ns: int, depth: int = 15) -> Iterator[MdEvent]:
        """Offline: apply actions to a private engine; yield trades and changed top-N books."""
        if self._books is None:
            self._books = {sym: Exchange([_spec(st.cfg)], {}) for sym, st in self._states.items()}
        exchanges = self._books
        views = {sym: ex.books[sym] for sym, ex in exchanges.items()}
        for action in self.actions_until(t_ns, views):
            ex = exchanges[action.symbol]
            book = ex.books[action.symbol]
            before = book.version
            apply_action(ex, action, action.ts_ns // 1_000_000)
            _, trades = ex.drain()
            for tr in trades:
                yield TradePrint(action.ts_ns, tr.symbol, tr.price, tr.qty, tr.side)
            if book.version != before:
                bids, asks = book.depth(depth)
                yield BookSnapshot(action.ts_ns, action.symbol, tuple(bids), tuple(asks))

    # ---- internals ------------------------------------------------------------------------

    def _gap_ns(self, st: _State) -> int:
        rate = self._rate * (10.0 if st.burst_left > 0 else 1.0)
        if st.burst_left > 0:
            st.burst_left -= 1
        elif st.rng.random() < self._burst_prob:
            st.burst_left = st.rng.randint(10, 60)  # mean 35, see __init__
        return max(1, int(st.rng.expovariate(rate) * 1e9))

    def _one(self, st: _State, book: BookView) -> Action:
        rng, cfg = st.rng, st.cfg
        ts = st.next_ns
        dt = 1.0 / self._rate
        st.fair *= math.exp(rng.gauss(0.0, cfg.volatility_bps_per_s * 1e-4 * math.sqrt(dt)))
        bid, ask = book.best_bid(), book.best_ask()
        st.steps += 1
        if st.steps % PRUNE_EVERY == 0:  # forget orders that takes have filled
            st.live = [o for o in st.live if o in book]
            st.live_bids = sum(1 for o in st.live if o[-1] == "b")
        if bid is None or ask is None:  # refill an emptied side before anything else
            return self._add(st, ts, bid is None, ask is None)
        u = rng.random()
        if u < self._trade_frac:
            mid = float(bid + ask) / 2
            p_buy = 0.5 + max(-0.4, min(0.4, (st.fair - mid) / max(float(cfg.tick), 1e-12) * 0.05))
            # market orders are smaller than resting ones and never sweep a whole side
            is_buy = rng.random() < p_buy
            cap = (book.available(is_buy, None) / 2).quantize(cfg.step, ROUND_DOWN)
            qty = min(self._qty(st, TAKE_MU), cap)
            if qty >= cfg.min_qty:
                return TakeAction(ts, cfg.symbol, is_buy, qty)
        p_cancel = CANCEL_P * min(1.0, len(st.live) / (CANCEL_AT * self._levels))
        if st.live and u < self._trade_frac + p_cancel:
            oid = st.live.pop(rng.randrange(len(st.live)))
            st.live_bids -= oid[-1] == "b"
            return CancelAction(ts, cfg.symbol, oid)
        return self._add(st, ts, bid is None, ask is None)

    def _add(self, st: _State, ts: int, no_bid: bool, no_ask: bool) -> AddAction:
        rng, cfg = st.rng, st.cfg
        if no_bid or no_ask:  # an empty side is refilled first: books are never one-sided long
            is_buy = no_bid
        else:
            # lean towards the side with fewer of our resting orders, so neither side runs dry
            n = len(st.live)
            is_buy = rng.random() < (0.5 if n == 0 else 0.8 - 0.6 * st.live_bids / n)
        k = 1 + int(rng.expovariate(3.0 / self._levels))  # ticks away from fair value
        fair = Decimal(repr(st.fair))
        if is_buy:
            price = (fair / cfg.tick).to_integral_value(ROUND_DOWN) * cfg.tick - (k - 1) * cfg.tick
        else:
            price = (fair / cfg.tick).to_integral_value(ROUND_UP) * cfg.tick + (k - 1) * cfg.tick
        price = max(price, cfg.tick)
        st.seq += 1
        oid = f"g{cfg.symbol}.{st.seq}{'b' if is_buy else 'a'}"
        st.live.append(oid)
        st.live_bids += is_buy
        return AddAction(ts, cfg.symbol, oid, is_buy, price, self._qty(st))

    def _qty(self, st: _State, mu: float = 1.0) -> Decimal:
        units = 1 + int(st.rng.lognormvariate(mu, 1.0))
        lot = st.cfg.lot_qty or st.cfg.min_qty
        return max(st.cfg.min_qty, (lot * units).quantize(st.cfg.step))


def apply_action(ex: Exchange, action: Action, ts_ms: int) -> None:
    """Apply one generator action to an engine's shared book."""
    if isinstance(action, AddAction):
        ex.mm_add(action.symbol, action.oid, action.is_buy, action.price, action.qty, ts_ms)
    elif isinstance(action, CancelAction):
        ex.mm_cancel(action.symbol, action.oid)
    else:
        ex.mm_take(action.symbol, action.is_buy, action.qty, ts_ms)


def _spec(g: GenSymbol) -> SymbolSpec:
    return SymbolSpec(symbol=g.symbol, base=g.symbol, min_qty=g.min_qty)
