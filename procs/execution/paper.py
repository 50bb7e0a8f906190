"""Paper mode: orders filled locally against the live book, answering like the venue would.

A resting limit fills when the opposite best crosses its price, or by trades at its price once the
queue ahead of it (the visible size at that price when it joined, shrunk by cancels) is consumed.
Market and IOC/FOK orders walk the opposite levels. Fees: maker for resting fills, taker otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

import numpy as np

from procs.execution.config import PaperConfig
from procs.execution.instruments import DecimalGrid, Instrument
from procs.execution.model import ZERO, OrderRequest, OrderType, Side, TimeInForce, VenueOrderUpdate
from shm.records import BOOK_V1

Level = tuple[Decimal, Decimal]  # (price, qty)
FEE_QUANTUM: Final = Decimal("1e-10")


@dataclass(frozen=True, slots=True)
class BookLevels:
    """One side-by-side snapshot of the book, best first, on the symbol's tick and step."""

    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_ns: int = 0


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


class RecordBook:
    """A BOOK_V1 record as it came (a ``Records.tolist()`` row: levels as arrays), turned into
    Decimal levels only when something asks for them (an order placed on it, a fill check):
    most books only shrink queues, which needs one level's qty per resting order (``qty_at``),
    or nothing when no order rests.

    Reads like ``BookLevels`` (``symbol``, ``bids``, ``asks``, ``ts_ns``)."""

    __slots__ = ("_grids", "_levels", "_row", "symbol", "ts_ns")

    def __init__(
        self, row: tuple[Any, ...], inst: Instrument, grids: tuple[DecimalGrid, DecimalGrid]
    ) -> None:
        self.symbol = inst.symbol
        self.ts_ns: int = row[_B["ts_event_ns"]]
        self._row, self._grids = row, grids
        self._levels: BookLevels | None = None

    def levels(self) -> BookLevels:
        if self._levels is None:
            row, (to_px, to_qty) = self._row, self._grids

            def side(px: Any, qty: Any, n: int) -> tuple[Level, ...]:
                return tuple(
                    (to_px(p), to_qty(q))
                    for p, q in zip(px[:n].tolist(), qty[:n].tolist(), strict=True)
                )

            self._levels = BookLevels(
                symbol=self.symbol,
                bids=side(row[_B["bid_px"]], row[_B["bid_qty"]], row[_B["n_bids"]]),
                asks=side(row[_B["ask_px"]], row[_B["ask_qty"]], row[_B["n_asks"]]),
                ts_ns=self.ts_ns,
            )
        return self._levels

    @property
    def bids(self) -> tuple[Level, ...]:
        return self.levels().bids

    @property
    def asks(self) -> tuple[Level, ...]:
        return self.levels().asks

    def qty_at(self, side: Side, price: Decimal) -> Decimal:
        """The visible qty at ``price`` on ``side``'s own side of the book (bids for a buy)."""
        if self._levels is not None:
            same = self._levels.bids if side is Side.BUY else self._levels.asks
            return sum((q for p, q in same if p == price), ZERO)
        row, (to_px, to_qty) = self._row, self._grids
        if side is Side.BUY:
            px, qty, n = row[_B["bid_px"]], row[_B["bid_qty"]], row[_B["n_bids"]]
        else:
            px, qty, n = row[_B["ask_px"]], row[_B["ask_qty"]], row[_B["n_asks"]]
        total = ZERO
        for i, p in enumerate(px[:n].tolist()):
            if to_px(p) == price:
                total += to_qty(float(qty[i]))
        return total


AnyBook = BookLevels | RecordBook


@dataclass(slots=True)
class _Resting:
    req: OrderRequest
    order_id: str
    queue_ahead: Decimal
    filled: Decimal = ZERO
    notional: Decimal = ZERO
    fee: Decimal = ZERO
    status: str = "NEW"

    @property
    def remaining(self) -> Decimal:
        return self.req.qty - self.filled


class PaperVenue:
    """Simulated matching for our own orders only; never touches the real venue."""

    def __init__(self, config: PaperConfig, id_prefix: str = "P") -> None:
        self._maker = config.maker_fee_rate
        self._taker = config.taker_fee_rate
        self._ahead_frac = Decimal(repr(config.queue_ahead_fraction))
        self._prefix = id_prefix
        self._seq = 0
        self._orders: dict[str, _Resting] = {}
        self._open: dict[str, _Resting] = {}  # may be open; terminal ones leave in _resting

    def query(self, client_id: str) -> VenueOrderUpdate | None:
        o = self._orders.get(client_id)
        return None if o is None else self._update(o, 0)

    def open_orders(self) -> list[VenueOrderUpdate]:
        return [self._update(o, 0) for o in self._open.values() if o.status in _OPEN]

    def submit(self, req: OrderRequest, book: AnyBook, now_ns: int) -> list[VenueOrderUpdate]:
        """Accept an order; return the venue events it causes right away."""
        if req.client_id in self._orders:
            raise ValueError(f"duplicate clientId {req.client_id}")  # the venue's 30042
        self._seq += 1
        o = _Resting(req, f"{self._prefix}{self._seq}", ZERO)
        self._orders[req.client_id] = o
        self._open[req.client_id] = o
        opposite = book.asks if req.side is Side.BUY else book.bids
        crossing = [lv for lv in opposite if _crosses(req, lv[0])]
        if req.tif is TimeInForce.POST_ONLY and crossing:
            o.status = "CANCELED"  # would take liquidity
            return [self._update(o, now_ns)]
        if req.tif is TimeInForce.FOK and sum((q for _, q in crossing), ZERO) < req.qty:
            o.status = "CANCELED"
            return [self._update(o, now_ns)]
        out = [self._update(o, now_ns)]  # acknowledged
        for px, qty in crossing:
            if o.remaining == 0:
                break
            self._fill(o, min(qty, o.remaining), px, maker=False)
            o.status = "FILLED" if o.remaining == 0 else "PART_FILLED"
            out.append(self._update(o, now_ns))  # one event per level, like the venue's pushes
        if o.remaining == 0:
            return out
        if req.order_type is OrderType.MARKET or req.tif in (TimeInForce.IOC, TimeInForce.FOK):
            o.status = "CANCELED"
        else:
            same = book.bids if req.side is Side.BUY else book.asks
            at_price = sum((q for p, q in same if p == req.price), ZERO)
            o.queue_ahead = at_price * self._ahead_frac
            o.status = "PART_FILLED" if o.filled else "NEW"
            return out
        out.append(self._update(o, now_ns))
        return out

    def cancel(self, client_id: str, now_ns: int) -> list[VenueOrderUpdate]:
        o = self._orders.get(client_id)
        if o is None or o.status not in _OPEN:
            return []  # the venue's "order status error"
        o.status = "CANCELED"
        return [self._update(o, now_ns)]

    def on_book(self, book: BookLevels) -> list[VenueOrderUpdate]:
        """Fill resting orders the opposite best now crosses; shrink queues on cancels."""
        out = []
        for o in self._resting(book.symbol):
            price = o.req.price
            assert price is not None
            opposite = book.asks if o.req.side is Side.BUY else book.bids
            same = book.bids if o.req.side is Side.BUY else book.asks
            at_price = sum((q for p, q in same if p == price), ZERO)
            o.queue_ahead = min(o.queue_ahead, at_price)
            through = [q for p, q in opposite if _strictly_through(o.req.side, p, price)]
            touching = sum((q for p, q in opposite if p == price), ZERO)
            if through:
                self._fill(o, o.remaining, price, maker=True)
            elif touching > o.queue_ahead:
                self._fill(o, min(o.remaining, touching - o.queue_ahead), price, maker=True)
                o.queue_ahead = ZERO
            else:
                continue
            o.status = "FILLED" if o.remaining == 0 else "PART_FILLED"
            out.append(self._update(o, book.ts_ns))
        return out

    def shrink_queues(self, book: RecordBook) -> None:
        """``on_book`` for a book that cannot fill (``may_fill`` is False): only the queues
        ahead of resting orders shrink, from one level's qty each; no level is converted."""
        for o in self._resting(book.symbol):
            price = o.req.price
            assert price is not None
            o.queue_ahead = min(o.queue_ahead, book.qty_at(o.req.side, price))

    def may_fill(self, symbol: str, best_bid: Decimal, best_ask: Decimal) -> bool:
        """Whether ``on_book`` with this best bid and ask could fill a resting order: only an
        opposite best at or through its price can (levels are best first). False means that
        ``on_book`` would only shrink queues, which nothing reads before the next order."""
        for o in self._resting(symbol):
            price = o.req.price
            if price is None or (
                best_ask <= price if o.req.side is Side.BUY else best_bid >= price
            ):
                return True
        return False

    def on_trade(self, trade: TradePrint) -> list[VenueOrderUpdate]:
        """A print at our price eats the queue ahead first; a print through our price fills us."""
        out = []
        for o in self._resting(trade.symbol):
            price = o.req.price
            assert price is not None
            if trade.taker_side is o.req.side:
                continue  # a buyer-initiated print never fills our buy
            if _strictly_through(o.req.side, trade.price, price):
                qty = min(o.remaining, trade.qty)
            elif trade.price == price:
                left = trade.qty - o.queue_ahead
                o.queue_ahead = max(ZERO, -left)
                qty = min(o.remaining, max(left, ZERO))
            else:
                continue
            if qty == 0:
                continue
            self._fill(o, qty, price, maker=True)
            o.status = "FILLED" if o.remaining == 0 else "PART_FILLED"
            out.append(self._update(o, trade.ts_ns))
        return out

    def _resting(self, symbol: str) -> list[_Resting]:
        out, done = [], []
        for cid, o in self._open.items():
            if o.status not in _OPEN:
                done.append(cid)
            elif o.req.symbol == symbol:
                out.append(o)
        for cid in done:  # every order ever placed stays in _orders (queries): not scanned
            del self._open[cid]
        return out

    def _fill(self, o: _Resting, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        rate = self._maker if maker else self._taker
        o.filled += qty
        o.notional += qty * price
        o.fee += (qty * price * rate).quantize(FEE_QUANTUM, rounding=ROUND_HALF_EVEN)

    def _update(self, o: _Resting, now_ns: int) -> VenueOrderUpdate:
        status = o.status
        if status == "CANCELED" and o.filled:
            status = "PART_FILLED_CANCELED"
        return VenueOrderUpdate(
            client_id=o.req.client_id,
            order_id=o.order_id,
            symbol=o.req.symbol,
            status=status,
            filled_qty=o.filled,
            avg_price=o.notional / o.filled if o.filled else ZERO,
            fee=o.fee,
            mtime_ms=now_ns // 1_000_000,
            qty=o.req.qty,
            price=o.req.price,
            side=o.req.side,
        )


_OPEN: Final = frozenset({"NEW", "PART_FILLED"})


def _crosses(req: OrderRequest, level_price: Decimal) -> bool:
    if req.order_type is OrderType.MARKET or req.price is None:
        return True
    return level_price <= req.price if req.side is Side.BUY else level_price >= req.price


def _strictly_through(side: Side, opposite_price: Decimal, price: Decimal) -> bool:
    return opposite_price < price if side is Side.BUY else opposite_price > price


def levels(*pairs: Sequence[str]) -> tuple[Level, ...]:
    """Build levels from text pairs: ``levels(("100.5", "2"), ...)`` (tests, examples)."""
    return tuple((Decimal(p), Decimal(q)) for p, q in pairs)
