"""``QueueMatcher``: our own orders matched against an observed L2 book and its trade prints.

Used by execution's paper mode (against the live book) and by the backtest (against a capture).
The displayed book is other people's liquidity, which we never change: an order that crosses
takes the displayed levels best first (one report per level, like the venue's pushes); an order
that rests joins the queue behind the displayed size at its price (``procs.matching.queue``) and
fills when trades print at its price past the queue ahead of it, when the opposite side's best
reaches its price with more size than that queue, or at once when the opposite side moves
through its price. An incoming order runs through ``procs.matching.rules.enter``, the same
procedure simex runs against its full book, here against ``ObservedLevels`` (the displayed
levels, each taken at most once per order): GTC, IOC, FOK, POST_ONLY, self-trade prevention
against our own resting orders, reduce-only checks and clamps, statuses and fees
(``FeeSchedule``) are the rules' own.

Pure: no I/O, no clock (every call takes ``ts_ns``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Protocol

from procs.matching.book import Fill, Resting
from procs.matching.fees import funding_amount
from procs.matching.queue import QueueConfig, QueueModel, make_queue_model
from procs.matching.rules import (
    FeeSchedule,
    MatchReject,
    cancel_status,
    check_effect,
    clamp,
    closable,
    crosses,
    enter,
    fill_status,
    reduce_only_check,
)

__all__ = [
    "BookLevels",
    "BookView",
    "Level",
    "MatchOrder",
    "MatchReject",
    "ObservedLevels",
    "OrderSpec",
    "QueueMatcher",
    "TradePrint",
]

ZERO: Final = Decimal(0)
# fees as paper mode has always reported them (journals, the golden session): the same value as
# simex's booking quantum (fees.MONEY, 1e-12) whenever a fee has at most 10 decimals, as every
# rate of 4 decimals on price and qty grids of 6 decimals together gives
FEE_QUANTUM: Final = Decimal("1e-10")
OPEN: Final = frozenset({"NEW", "PART_FILLED"})

Level = tuple[Decimal, Decimal]  # (price, qty)


@dataclass(frozen=True, slots=True)
class BookLevels:
    """One snapshot of a symbol's book, best first, on the symbol's tick and step."""

    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_ns: int = 0

    def qty_at_price(self, is_buy: bool, price: Decimal) -> Decimal:
        """The displayed qty at ``price`` on the bids (``is_buy``) or the asks."""
        return _qty_at(self.bids if is_buy else self.asks, price)

    def crosses(self, is_buy: bool, price: Decimal) -> bool:
        """Whether a level opposite an ``is_buy`` order at ``price`` is through it (an ask
        below a buy's price, a bid above a sell's)."""
        return any(_through(is_buy, p, price) for p, _ in (self.asks if is_buy else self.bids))


class BookView(Protocol):
    """What the matcher reads of a book: ``BookLevels``, or a lazy view that converts its
    levels only when asked (execution's ``RecordBook``)."""

    @property
    def symbol(self) -> str: ...

    @property
    def bids(self) -> tuple[Level, ...]: ...

    @property
    def asks(self) -> tuple[Level, ...]: ...

    @property
    def ts_ns(self) -> int: ...

    def qty_at_price(self, is_buy: bool, price: Decimal) -> Decimal: ...

    def crosses(self, is_buy: bool, price: Decimal) -> bool: ...


@dataclass(frozen=True, slots=True)
class TradePrint:
    """One public trade; ``taker_buy`` is the aggressor's side."""

    symbol: str
    price: Decimal
    qty: Decimal
    taker_buy: bool
    ts_ns: int = 0


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """What an order asks for; ``price`` None is a market order."""

    client_id: str
    symbol: str
    is_buy: bool
    qty: Decimal
    price: Decimal | None
    effect: str = "GTC"
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class FillReport:
    """One fill of one of our orders (the backtest reads these for PnL attribution)."""

    client_id: str
    symbol: str
    is_buy: bool
    qty: Decimal
    price: Decimal
    fee: Decimal
    maker: bool
    ts_ns: int


@dataclass(slots=True)
class MatchOrder:
    """An order as the matcher keeps it; ``front`` is the size queued ahead of it."""

    spec: OrderSpec
    order_id: str
    qty: Decimal
    front: Decimal = ZERO
    level_qty: Decimal = ZERO  # displayed size at our price when last seen
    traded: Decimal = ZERO  # printed at our price since then
    filled: Decimal = ZERO
    notional: Decimal = ZERO
    fee: Decimal = ZERO
    status: str = "NEW"
    fills: int = 0

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    @property
    def is_buy(self) -> bool:
        return self.spec.is_buy

    @property
    def price(self) -> Decimal | None:
        return self.spec.price

    @property
    def effect(self) -> str:
        return self.spec.effect

    @property
    def open(self) -> bool:
        return self.status in OPEN


@dataclass(slots=True)
class _Symbol:
    resting: list[MatchOrder] = field(default_factory=list)
    position: Decimal = ZERO


RETAIN_FINAL: Final = 10_000  # final orders a matcher keeps for queries (the newest)


class QueueMatcher:
    """Our orders against an observed book; ``reports`` lists what each call changed."""

    def __init__(
        self,
        *,
        maker_fee_rate: Decimal,
        taker_fee_rate: Decimal,
        queue: QueueConfig | None = None,
        id_prefix: str = "P",
        check_reduce_only: bool = False,
        keep_fills: bool = False,
        retain_final: int = RETAIN_FINAL,
    ) -> None:
        self.maker_fee_rate = maker_fee_rate
        self.taker_fee_rate = taker_fee_rate
        self.fees = FeeSchedule(maker_fee_rate, taker_fee_rate, FEE_QUANTUM)
        self.queue_config = queue or QueueConfig()
        self.queue: QueueModel = make_queue_model(self.queue_config)
        self._ahead = Decimal(repr(self.queue_config.ahead_fraction))
        self._prefix = id_prefix
        self._seq = 0
        self._check_ro = check_reduce_only
        # by client id, in placing order: every open order, and final ones for queries until
        # more than ``retain_final`` orders are kept (``forget_old``: a paper venue runs for days)
        self.orders: dict[str, MatchOrder] = {}
        self.retain_final = retain_final
        self.forgotten_total = 0
        self._symbols: dict[str, _Symbol] = {}
        self.fills: list[FillReport] | None = [] if keep_fills else None

    # -- queries -----------------------------------------------------------------------------

    def position(self, symbol: str) -> Decimal:
        """Net position from this matcher's fills (long > 0)."""
        s = self._symbols.get(symbol)
        return ZERO if s is None else s.position

    def set_position(self, symbol: str, qty: Decimal) -> None:
        self._sym(symbol).position = qty

    def resting(self, symbol: str) -> list[MatchOrder]:
        """Open orders of ``symbol`` (terminal ones are dropped from the scan here)."""
        s = self._symbols.get(symbol)
        if s is None:
            return []
        if any(not o.open for o in s.resting):
            s.resting = [o for o in s.resting if o.open]
        return s.resting

    def open_orders(self) -> list[MatchOrder]:
        return [o for s in self._symbols for o in self.resting(s)]

    def may_fill(self, symbol: str, best_bid: Decimal, best_ask: Decimal) -> bool:
        """Whether a book with this best bid and ask could fill a resting order (only an
        opposite best at or through its price can); False: it would only move queues."""
        for o in self.resting(symbol):
            price = o.spec.price
            if price is None or (best_ask <= price if o.spec.is_buy else best_bid >= price):
                return True
        return False

    def forget_old(self) -> list[str]:
        """Forget the oldest final orders while more than ``retain_final`` orders are kept;
        return their client ids. Open orders are never forgotten. The cost is amortised:
        nothing happens until twice ``retain_final`` orders are kept."""
        if len(self.orders) < 2 * self.retain_final:
            return []
        excess = len(self.orders) - self.retain_final
        gone: list[str] = []
        for cid, o in self.orders.items():
            if len(gone) >= excess:
                break
            if not o.open:
                gone.append(cid)
        for cid in gone:
            del self.orders[cid]
        self.forgotten_total += len(gone)
        return gone

    # -- orders ------------------------------------------------------------------------------

    def submit(self, spec: OrderSpec, book: BookView, ts_ns: int) -> list[MatchOrder]:
        """Accept an order against ``book``; return the states after each change: the order's
        acknowledgement first (or its cancellation when it took nothing: post-only that would
        cross, FOK short), our resting orders it cancelled (self-trade prevention), its fills,
        its final state. Raises MatchReject for a duplicate id or a reduce-only misfit."""
        if spec.client_id in self.orders:
            raise MatchReject(30042, f"Duplicate clientId {spec.client_id}")
        check_effect(spec.effect)
        qty = spec.qty
        if self._check_ro and spec.reduce_only:
            pos = self.position(spec.symbol)
            reduce_only_check(pos, spec.is_buy)
            qty = min(qty, closable(pos, spec.is_buy))
        self._seq += 1
        o = MatchOrder(spec, f"{self._prefix}{self._seq}", qty)
        self.orders[spec.client_id] = o
        out = [_copy(o)]  # acknowledged

        def on_fill(f: Fill) -> None:
            self._fill(o, f.qty, f.price, maker=False, ts_ns=ts_ns)
            out.append(_copy(o))

        def cancel_own(r: MatchOrder) -> None:
            r.status = cancel_status(r.filled)
            out.append(_copy(r))

        rest = self.resting(spec.symbol)
        own = (
            [(r, r.spec.is_buy, px) for r in rest if (px := r.spec.price) is not None]
            if rest
            else ()
        )
        outcome = enter(o, ObservedLevels(book), on_fill, own=own, cancel_own=cancel_own)
        if outcome in ("post_only", "fok"):
            o.status = "CANCELED"
            return [_copy(o), *out[1:]]  # took nothing: no acknowledgement of its own
        if outcome == "cancel":
            o.status = cancel_status(o.filled)
            out.append(_copy(o))
        elif outcome == "rest":
            assert spec.price is not None
            at_price = book.qty_at_price(spec.is_buy, spec.price)  # (one side's level)
            o.front, o.level_qty = at_price * self._ahead, at_price
            self._sym(spec.symbol).resting.append(o)
        return out

    def cancel(self, client_id: str) -> MatchOrder | None:
        """Cancel an open order; None when unknown or already final (the venue's 10013)."""
        o = self.orders.get(client_id)
        if o is None or not o.open:
            return None
        o.status = cancel_status(o.filled)
        return _copy(o)

    # -- market data -------------------------------------------------------------------------

    def on_book(self, book: BookView) -> list[MatchOrder]:
        """Move queues with the new depth; fill what the opposite side reaches."""
        out = []
        for o in self.resting(book.symbol):  # (a RecordBook converts only the levels it reads)
            price = o.spec.price
            assert price is not None
            buy = o.spec.is_buy
            self._depth(o, book.qty_at_price(buy, price))
            if book.crosses(buy, price):
                self._fill(o, o.remaining, price, maker=True, ts_ns=book.ts_ns)
            else:
                touching = book.qty_at_price(not buy, price)
                if touching <= o.front:
                    continue
                self._fill(o, min(o.remaining, touching - o.front), price, True, book.ts_ns)
                o.front = ZERO
            out.append(_copy(o))
        return out

    def shrink_queues(self, symbol: str, qty_at: Callable[[bool, Decimal], Decimal]) -> None:
        """``on_book`` for a book that cannot fill (``may_fill`` False): only the queues move,
        from the displayed size ``qty_at(is_buy, price)`` at each resting order's price (on its
        own side), so the caller converts one level per order, not the whole book."""
        for o in self.resting(symbol):
            if o.spec.price is not None:
                self._depth(o, qty_at(o.spec.is_buy, o.spec.price))

    def on_trade(self, trade: TradePrint) -> list[MatchOrder]:
        """A print at our price eats the queue ahead first; a print through our price fills us."""
        out = []
        for o in self.resting(trade.symbol):
            price = o.spec.price
            assert price is not None
            if trade.taker_buy is o.spec.is_buy:
                continue  # a buyer-initiated print never fills our buy
            if _through(o.spec.is_buy, trade.price, price):
                qty = min(o.remaining, trade.qty)
            elif trade.price == price:
                o.traded += trade.qty
                left = trade.qty - o.front
                o.front = max(ZERO, -left)
                qty = min(o.remaining, max(left, ZERO))
            else:
                continue
            if qty == 0:
                continue
            self._fill(o, qty, price, maker=True, ts_ns=trade.ts_ns)
            out.append(_copy(o))
        return out

    def settle_funding(self, symbol: str, mark: Decimal, rate: Decimal) -> Decimal:
        """Funding received (< 0 paid) by this matcher's position in ``symbol``."""
        return funding_amount(self.position(symbol), mark, rate)

    # -- internals ---------------------------------------------------------------------------

    def _sym(self, symbol: str) -> _Symbol:
        s = self._symbols.get(symbol)
        if s is None:
            s = self._symbols[symbol] = _Symbol()
        return s

    def _depth(self, o: MatchOrder, new: Decimal) -> None:
        o.front = self.queue.on_depth(o.front, o.traded, o.level_qty, new)
        o.level_qty, o.traded = new, ZERO

    def _reduce_only_qty(self, spec: OrderSpec) -> Decimal:
        pos = self.position(spec.symbol)
        if pos == 0:
            raise MatchReject(30018, "Reduce-only order with no position")
        if (pos > 0) == spec.is_buy:
            raise MatchReject(30019, "Reduce-only order in the position's direction")
        return min(spec.qty, abs(pos))

    def _fill(self, o: MatchOrder, qty: Decimal, price: Decimal, maker: bool, ts_ns: int) -> None:
        f = self.fees.of(qty, price, maker)
        o.filled += qty
        o.notional += qty * price
        o.fee += f
        o.fills += 1
        o.status = fill_status(o.remaining)
        s = self._sym(o.spec.symbol)
        s.position += qty if o.spec.is_buy else -qty
        if self.fills is not None:
            self.fills.append(
                FillReport(
                    o.spec.client_id, o.spec.symbol, o.spec.is_buy, qty, price, f, maker, ts_ns
                )
            )
        if self._check_ro:
            self._clamp_reduce_only(s)

    def _clamp_reduce_only(self, s: _Symbol) -> None:
        """Keep resting reduce-only orders no larger than the position they reduce."""
        for r in s.resting:
            if not (r.open and r.spec.reduce_only):
                continue
            left = clamp(r.remaining, closable(s.position, r.spec.is_buy))
            if left is None:
                continue
            if left == 0:
                r.status = cancel_status(r.filled)
            else:
                r.qty = r.filled + left


def _copy(o: MatchOrder) -> MatchOrder:
    return MatchOrder(
        o.spec,
        o.order_id,
        o.qty,
        o.front,
        o.level_qty,
        o.traded,
        o.filled,
        o.notional,
        o.fee,
        o.status,
        o.fills,
    )


def _qty_at(levels: tuple[Level, ...], price: Decimal) -> Decimal:
    return sum((q for p, q in levels if p == price), ZERO)


def _through(is_buy: bool, opposite_price: Decimal, price: Decimal) -> bool:
    return opposite_price < price if is_buy else opposite_price > price


class ObservedLevels:
    """An observed book's displayed levels as ``Liquidity`` for one incoming order: other
    people's size, never changed; each level is taken at most once (one fill per level, like
    the venue's pushes), at its price. A fill's maker is the displayed level (owner None)."""

    __slots__ = ("_book", "_cursor")

    def __init__(self, book: BookView) -> None:
        self._book = book
        # per side taken (asks for a buyer, bids for a seller): levels used up, taken from the next
        self._cursor: dict[bool, tuple[int, Decimal]] = {}

    def would_cross(self, is_buy: bool, price: Decimal | None) -> bool:
        levels = self._book.asks if is_buy else self._book.bids
        i, used = self._cursor.get(is_buy, (0, ZERO))
        for px, q in levels[i:]:
            if q > used:
                return crosses(is_buy, price, px)
            used = ZERO
        return False

    def available(self, is_buy: bool, limit: Decimal | None) -> Decimal:
        levels = self._book.asks if is_buy else self._book.bids
        i, used = self._cursor.get(is_buy, (0, ZERO))
        total = -used
        for px, q in levels[i:]:
            if not crosses(is_buy, limit, px):
                break
            total += q
        return max(total, ZERO)

    def match_one(self, is_buy: bool, qty: Decimal, limit: Decimal | None) -> Fill | None:
        levels = self._book.asks if is_buy else self._book.bids
        i, used = self._cursor.get(is_buy, (0, ZERO))
        while qty > 0 and i < len(levels):
            px, lvl = levels[i]
            if not crosses(is_buy, limit, px):
                break
            left = lvl - used
            if left <= 0:  # used up (or an empty level): the next one
                i, used = i + 1, ZERO
                continue
            q = min(qty, left)
            self._cursor[is_buy] = (i, used + q)
            return Fill(Resting("", None, not is_buy, px, left - q), px, q)
        self._cursor[is_buy] = (i, used)
        return None
