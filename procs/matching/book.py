"""One symbol's limit order book: price-time priority, Decimal prices, no I/O (simex matches on it).

Resting orders belong to a user account (``owner``) or to the market generator (``owner`` None).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["Fill", "OrderBook", "Resting"]

ZERO = Decimal(0)


@dataclass(slots=True, eq=False)
class Resting:
    """A resting order as the book sees it; ``remaining`` shrinks as it fills."""

    oid: str
    owner: str | None
    is_buy: bool
    price: Decimal
    remaining: Decimal


@dataclass(slots=True, frozen=True)
class Fill:
    maker: Resting
    price: Decimal
    qty: Decimal


@dataclass(slots=True)
class _Side:
    is_buy: bool
    prices: list[Decimal] = field(default_factory=list)  # ascending for both sides
    levels: dict[Decimal, deque[Resting]] = field(default_factory=dict)
    qty: dict[Decimal, Decimal] = field(default_factory=dict)

    def best(self) -> Decimal | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_buy else self.prices[0]

    def iter_prices(self) -> Iterator[Decimal]:
        return reversed(self.prices) if self.is_buy else iter(self.prices)


class OrderBook:
    """Price-time priority book; ``version`` counts changes, ``changed`` lists touched levels."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids = _Side(True)
        self.asks = _Side(False)
        self.orders: dict[str, Resting] = {}
        self.version = 0
        self.changed: set[tuple[bool, Decimal]] = set()

    def side(self, is_buy: bool) -> _Side:
        return self.bids if is_buy else self.asks

    def best_bid(self) -> Decimal | None:
        return self.bids.best()

    def best_ask(self) -> Decimal | None:
        return self.asks.best()

    def mid(self) -> Decimal | None:
        b, a = self.bids.best(), self.asks.best()
        if b is None or a is None:
            return b if a is None else a
        return (a + b) / 2

    def __contains__(self, oid: object) -> bool:
        return oid in self.orders

    def remaining(self, oid: str) -> Decimal:
        """What is left of a resting order (zero once it is gone)."""
        r = self.orders.get(oid)
        return ZERO if r is None else r.remaining

    def add(self, order: Resting) -> None:
        if order.oid in self.orders:
            raise ValueError(f"order {order.oid} already rests in {self.symbol}")
        s = self.side(order.is_buy)
        level = s.levels.get(order.price)
        if level is None:
            level = s.levels[order.price] = deque()
            s.qty[order.price] = ZERO
            insort(s.prices, order.price)
        level.append(order)
        s.qty[order.price] += order.remaining
        self.orders[order.oid] = order
        self._touch(order.is_buy, order.price)

    def cancel(self, oid: str) -> Resting | None:
        order = self.orders.pop(oid, None)
        if order is None:
            return None
        s = self.side(order.is_buy)
        level = s.levels[order.price]
        level.remove(order)
        s.qty[order.price] -= order.remaining
        if not level:
            self._drop_level(s, order.price)
        self._touch(order.is_buy, order.price)
        return order

    def reduce(self, oid: str, new_remaining: Decimal) -> None:
        """Shrink a resting order in place (keeps its queue position)."""
        order = self.orders[oid]
        s = self.side(order.is_buy)
        s.qty[order.price] += new_remaining - order.remaining
        order.remaining = new_remaining
        self._touch(order.is_buy, order.price)

    def would_cross(self, is_buy: bool, price: Decimal | None) -> bool:
        best = self.side(not is_buy).best()
        if best is None:
            return False
        return price is None or (best <= price if is_buy else best >= price)

    def available(self, is_buy: bool, limit: Decimal | None) -> Decimal:
        """Quantity a taker could fill now up to ``limit`` (None: any price)."""
        s = self.side(not is_buy)
        total = ZERO
        for px in s.iter_prices():
            if limit is not None and (px > limit if is_buy else px < limit):
                break
            total += s.qty[px]
        return total

    def worst_price(self, is_buy: bool, qty: Decimal) -> Decimal | None:
        """Price of the deepest level a taker of ``qty`` would reach (None: empty side)."""
        s = self.side(not is_buy)
        last = None
        left = qty
        for px in s.iter_prices():
            last = px
            left -= s.qty[px]
            if left <= 0:
                break
        return last

    def match_one(self, is_buy: bool, qty: Decimal, limit: Decimal | None) -> Fill | None:
        """Fill a taker against the single best maker; None when nothing crosses ``limit``."""
        s = self.side(not is_buy)
        if qty <= 0 or not s.prices:
            return None
        px = s.prices[-1] if s.is_buy else s.prices[0]
        if limit is not None and (px > limit if is_buy else px < limit):
            return None
        level = s.levels[px]
        maker = level[0]
        q = min(qty, maker.remaining)
        maker.remaining -= q
        s.qty[px] -= q
        if maker.remaining <= 0:
            level.popleft()
            del self.orders[maker.oid]
            if not level:
                self._drop_level(s, px)
        self._touch(s.is_buy, px)
        return Fill(maker, px, q)

    def match(self, is_buy: bool, qty: Decimal, limit: Decimal | None) -> list[Fill]:
        """Take liquidity for a taker; fully filled makers leave the book."""
        fills: list[Fill] = []
        left = qty
        while (f := self.match_one(is_buy, left, limit)) is not None:
            fills.append(f)
            left -= f.qty
        return fills

    def depth(self, n: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Top ``n`` levels as (bids descending, asks ascending)."""
        b = self.bids.prices[-n:][::-1] if n else self.bids.prices[::-1]
        a = self.asks.prices[:n] if n else list(self.asks.prices)
        return [(p, self.bids.qty[p]) for p in b], [(p, self.asks.qty[p]) for p in a]

    def level_qty(self, is_buy: bool, price: Decimal) -> Decimal:
        return self.side(is_buy).qty.get(price, ZERO)

    def take_changes(self) -> set[tuple[bool, Decimal]]:
        out, self.changed = self.changed, set()
        return out

    def _drop_level(self, s: _Side, price: Decimal) -> None:
        del s.levels[price]
        del s.qty[price]
        i = bisect_left(s.prices, price)
        del s.prices[i]

    def _touch(self, is_buy: bool, price: Decimal) -> None:
        self.version += 1
        self.changed.add((is_buy, price))
