"""Paper mode: orders filled locally against the live book, answering like the venue would.

A thin adapter over ``procs.matching.QueueMatcher`` (the matching rules paper mode shares with
the backtest): execution's ``OrderRequest`` in, the venue's ``VenueOrderUpdate`` out. A resting
limit joins the queue behind ``queue_ahead_fraction`` of the displayed size at its price and
fills by trades at its price once that queue is consumed, or when the opposite best crosses it.
Market and IOC/FOK orders walk the opposite levels. Fees: maker for resting fills, taker otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from procs.matching import BookLevels, Level, MatchOrder, OrderSpec, QueueConfig, QueueMatcher
from procs.matching import TradePrint as MatchTrade
from procs.matching.engine import MatchReject
from procs.trading.config import PaperConfig
from procs.trading.instruments import DecimalGrid, Instrument
from procs.trading.model import ZERO, OrderRequest, OrderType, Side, VenueOrderUpdate
from shm.records import BOOK_V1

__all__ = [
    "AnyBook",
    "BookLevels",
    "MatchReject",
    "PaperVenue",
    "RecordBook",
    "TradePrint",
    "book_from_record",
    "levels",
    "to_spec",
]


@dataclass(frozen=True, slots=True)
class TradePrint:
    symbol: str
    price: Decimal
    qty: Decimal
    taker_side: Side
    ts_ns: int = 0


def book_from_record(
    rec: np.void, inst: Instrument, grids: tuple[DecimalGrid, DecimalGrid] | None = None
) -> BookLevels:
    """Convert one BOOK_V1 record (float prices) to Decimal levels on the instrument's grid;
    ``grids`` (price on ``inst.tick``, qty on ``inst.step``) memoise the conversions."""
    to_px, to_qty = grids or (DecimalGrid(inst.tick), DecimalGrid(inst.step))

    def side(px_field: str, qty_field: str, n: int) -> tuple[Level, ...]:
        px, qty = rec[px_field][:n].tolist(), rec[qty_field][:n].tolist()
        return tuple((to_px(p), to_qty(q)) for p, q in zip(px, qty, strict=True))

    return BookLevels(
        symbol=inst.symbol,
        bids=side("bid_px", "bid_qty", int(rec["n_bids"])),
        asks=side("ask_px", "ask_qty", int(rec["n_asks"])),
        ts_ns=int(rec["ts_event_ns"]),
    )


_B = {name: i for i, name in enumerate(BOOK_V1.names or ())}  # field positions in a row's tuple
_B_BID: Final = (_B["bid_px"], _B["bid_qty"], _B["n_bids"])
_B_ASK: Final = (_B["ask_px"], _B["ask_qty"], _B["n_asks"])


class RecordBook:
    """A BOOK_V1 record as it came (a ``Records.tolist()`` row: levels as arrays), turned into
    Decimal levels only when something asks for them, one side at a time (a post-only order
    placed on it reads the opposite side's best level and its own price's qty): most books only
    shrink queues, which needs one level's qty per resting order (``qty_at``), or nothing when
    no order rests.

    Reads like ``BookLevels`` (``symbol``, ``bids``, ``asks``, ``ts_ns``, ``qty_at_price``)."""

    __slots__ = ("_asks", "_bids", "_grids", "_levels", "_row", "symbol", "ts_ns")

    def __init__(
        self, row: tuple[Any, ...], inst: Instrument, grids: tuple[DecimalGrid, DecimalGrid]
    ) -> None:
        self.symbol = inst.symbol
        self.ts_ns: int = row[_B["ts_event_ns"]]
        self._row, self._grids = row, grids
        self._levels: BookLevels | None = None
        self._bids: tuple[Level, ...] | None = None
        self._asks: tuple[Level, ...] | None = None

    def levels(self) -> BookLevels:
        if self._levels is None:
            self._levels = BookLevels(self.symbol, self.bids, self.asks, self.ts_ns)
        return self._levels

    @property
    def bids(self) -> tuple[Level, ...]:
        if self._bids is None:
            self._bids = self._side(_B_BID)
        return self._bids

    @property
    def asks(self) -> tuple[Level, ...]:
        if self._asks is None:
            self._asks = self._side(_B_ASK)
        return self._asks

    def _side(self, fields: tuple[int, int, int]) -> tuple[Level, ...]:
        row, (to_px, to_qty) = self._row, self._grids
        px, qty, n = (row[i] for i in fields)
        return tuple(
            (to_px(p), to_qty(q)) for p, q in zip(px[:n].tolist(), qty[:n].tolist(), strict=True)
        )

    def qty_at(self, side: Side, price: Decimal) -> Decimal:
        """The visible qty at ``price`` on ``side``'s own side of the book (bids for a buy)."""
        buy = side is Side.BUY
        same = self._bids if buy else self._asks
        if same is not None:
            return sum((q for p, q in same if p == price), ZERO)
        row, (to_px, to_qty) = self._row, self._grids
        px, qty, n = (row[i] for i in (_B_BID if buy else _B_ASK))
        return level_qty(px[:n].tolist(), qty, price, to_px, to_qty)

    def qty_at_price(self, is_buy: bool, price: Decimal) -> Decimal:
        """``BookLevels.qty_at_price``: ``qty_at`` on the buyer's or the seller's side."""
        return self.qty_at(Side.BUY if is_buy else Side.SELL, price)

    def crosses(self, is_buy: bool, price: Decimal) -> bool:
        """``BookLevels.crosses``, converting only the opposite levels that may be through
        ``price``: one more than a tick away on the other side as a float cannot round through
        it (the tolerance covers the float error)."""
        opposite = self._asks if is_buy else self._bids
        if opposite is not None:
            return any((p < price if is_buy else p > price) for p, _ in opposite)
        row, to_px = self._row, self._grids[0]
        px, _, n = (row[i] for i in (_B_ASK if is_buy else _B_BID))
        fp, tol = _as_float(price, to_px)
        if is_buy:
            return any(p < fp + tol and to_px(p) < price for p in px[:n].tolist())
        return any(p > fp - tol and to_px(p) > price for p in px[:n].tolist())


def level_qty(
    prices: list[float],
    qty: npt.NDArray[np.float64],
    price: Decimal,
    to_px: DecimalGrid,
    to_qty: DecimalGrid,
) -> Decimal:
    """The summed ``qty`` of the levels whose price is ``price`` on the tick (``to_px``).

    A level more than a tick away as floats cannot round to ``price`` (the tolerance covers the
    float error): only the others are converted, to the same answer."""
    fp, tol = _as_float(price, to_px)
    total = ZERO
    for i, p in enumerate(prices):
        if abs(p - fp) < tol and to_px(p) == price:
            total += to_qty(float(qty[i]))
    return total


def _as_float(price: Decimal, to_px: DecimalGrid) -> tuple[float, float]:
    """``price`` as a float, and how far a level's float may be from it and still round to it or
    through it on ``to_px``: a tick, plus the float error."""
    fp = float(price)
    return fp, float(to_px.quantum) + abs(fp) * 1e-12


AnyBook = BookLevels | RecordBook


def to_spec(req: OrderRequest) -> OrderSpec:
    """Execution's order request as the matcher reads it."""
    market = req.order_type is OrderType.MARKET or req.price is None
    return OrderSpec(
        client_id=req.client_id,
        symbol=req.symbol,
        is_buy=req.side is Side.BUY,
        qty=req.qty,
        price=None if market else req.price,
        effect="IOC" if market else str(req.tif.value),
        reduce_only=req.reduce_only,
    )


class PaperVenue:
    """Simulated matching for our own orders only; never touches the real venue."""

    def __init__(
        self,
        config: PaperConfig,
        id_prefix: str = "P",
        *,
        queue: QueueConfig | None = None,
        check_reduce_only: bool = False,
        keep_fills: bool = False,
    ) -> None:
        q = queue or QueueConfig(ahead_fraction=config.queue_ahead_fraction)
        self.matcher = QueueMatcher(
            maker_fee_rate=config.maker_fee_rate,
            taker_fee_rate=config.taker_fee_rate,
            queue=q,
            id_prefix=id_prefix,
            check_reduce_only=check_reduce_only,
            keep_fills=keep_fills,
        )
        self._req: dict[str, OrderRequest] = {}

    def query(self, client_id: str) -> VenueOrderUpdate | None:
        o = self.matcher.orders.get(client_id)
        return None if o is None else self._update(o, 0)

    def open_orders(self) -> list[VenueOrderUpdate]:
        return [self._update(o, 0) for o in self.matcher.open_orders()]

    def submit(self, req: OrderRequest, book: AnyBook, now_ns: int) -> list[VenueOrderUpdate]:
        """Accept an order; return the venue events it causes right away. ValueError
        (``MatchReject``) when the venue would refuse it (duplicate clientId, reduce-only)."""
        states = self.matcher.submit(to_spec(req), book, now_ns)
        self._req[req.client_id] = req
        out = [self._update(o, now_ns) for o in states]
        for cid in self.matcher.forget_old():  # bounded, like a venue's order history
            del self._req[cid]
        return out

    def cancel(self, client_id: str, now_ns: int) -> list[VenueOrderUpdate]:
        o = self.matcher.cancel(client_id)
        return [] if o is None else [self._update(o, now_ns)]  # [] : "order status error"

    def on_book(self, book: AnyBook) -> list[VenueOrderUpdate]:
        """Fill resting orders the opposite best now crosses; move queues with the depth."""
        return [self._update(o, book.ts_ns) for o in self.matcher.on_book(book)]

    def shrink_queues(self, book: RecordBook) -> None:
        """``on_book`` for a book that cannot fill (``may_fill`` is False): only the queues
        ahead of resting orders move, from one level's qty each; no level is converted."""
        self.matcher.shrink_queues(
            book.symbol, lambda buy, px: book.qty_at(Side.BUY if buy else Side.SELL, px)
        )

    def may_fill(self, symbol: str, best_bid: Decimal, best_ask: Decimal) -> bool:
        """Whether ``on_book`` with this best bid and ask could fill a resting order. False
        means that ``on_book`` would only move queues, which nothing reads before the next
        order."""
        return self.matcher.may_fill(symbol, best_bid, best_ask)

    def on_trade(self, trade: TradePrint) -> list[VenueOrderUpdate]:
        """A print at our price eats the queue ahead first; a print through our price fills us."""
        t = MatchTrade(trade.symbol, trade.price, trade.qty, trade.taker_side is Side.BUY,
                       trade.ts_ns)  # fmt: skip
        return [self._update(o, trade.ts_ns) for o in self.matcher.on_trade(t)]

    def _update(self, o: MatchOrder, now_ns: int) -> VenueOrderUpdate:
        status = o.status
        if status == "CANCELED" and o.filled:
            status = "PART_FILLED_CANCELED"
        req = self._req.get(o.spec.client_id)
        return VenueOrderUpdate(
            client_id=o.spec.client_id,
            order_id=o.order_id,
            symbol=o.spec.symbol,
            status=status,
            filled_qty=o.filled,
            avg_price=o.notional / o.filled if o.filled else ZERO,
            fee=o.fee,
            mtime_ms=now_ns // 1_000_000,
            qty=o.qty,
            price=None if req is None else req.price,
            side=Side.BUY if o.spec.is_buy else Side.SELL,
        )


def levels(*pairs: Sequence[str]) -> tuple[Level, ...]:
    """Build levels from text pairs: ``levels(("100.5", "2"), ...)`` (tests, examples)."""
    return tuple((Decimal(p), Decimal(q)) for p, q in pairs)
