"""The order-entry rules every matching mode runs: one procedure for an incoming order, the
checks and statuses around it, and the fee schedule.

An incoming order meets a ``Liquidity``: simex's full book (``procs.matching.book.OrderBook``,
where every participant's order rests) or the displayed levels of an observed book
(``procs.matching.engine.ObservedLevels``, paper mode and the backtest). ``enter`` applies the
same rules to both, in the venue's order:

1. POST_ONLY that would cross (the book, or one of our own resting orders) is cancelled,
   taking nothing.
2. Self-trade prevention: our own resting orders on the other side that the order reaches are
   cancelled before it takes anything (the maker is cancelled, the taker goes on).
3. FOK without enough liquidity up to its limit is cancelled, taking nothing.
4. The order takes liquidity best price first, one maker (or displayed level) per fill, at the
   maker's price, until filled or nothing crosses its limit (``take``).
5. What is left rests (GTC, POST_ONLY) or is cancelled (IOC, FOK, market).

Reduce-only orders are refused without a position to reduce (30018) or in its direction (30019)
and are kept no larger than the position (``closable``, ``clamp``). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal, Protocol, TypeVar

from procs.matching.book import Fill
from procs.matching.fees import MONEY, fee

__all__ = [
    "EFFECTS",
    "FeeSchedule",
    "Liquidity",
    "MatchReject",
    "Outcome",
    "Taker",
    "cancel_status",
    "check_effect",
    "clamp",
    "closable",
    "crosses",
    "enter",
    "fill_status",
    "reduce_only_check",
    "take",
]

ZERO: Final = Decimal(0)
EFFECTS: Final = frozenset({"GTC", "IOC", "FOK", "POST_ONLY"})

Outcome = Literal["post_only", "fok", "done", "rest", "cancel"]
"""What ``enter`` leaves the order as: cancelled untouched because it would cross (post_only)
or could not fill whole (fok); filled or closed while taking (done); resting (rest); its
remainder to cancel (cancel: IOC, FOK, market)."""

_O = TypeVar("_O")


class MatchReject(ValueError):
    """The order is refused outright (nothing is booked); ``code`` is the venue's error code."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


class Liquidity(Protocol):
    """What an incoming order takes from: a full book, or an observed book's displayed levels."""

    def would_cross(self, is_buy: bool, price: Decimal | None) -> bool: ...

    def available(self, is_buy: bool, limit: Decimal | None) -> Decimal: ...

    def match_one(self, is_buy: bool, qty: Decimal, limit: Decimal | None) -> Fill | None: ...


class Taker(Protocol):
    """The incoming order as ``enter`` reads it (``price`` None: a market order)."""

    @property
    def is_buy(self) -> bool: ...

    @property
    def price(self) -> Decimal | None: ...

    @property
    def effect(self) -> str: ...

    @property
    def remaining(self) -> Decimal: ...

    @property
    def open(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Maker and taker rates (a negative maker rate is a rebate); ``of`` books one fill,
    rounded half-even to ``quantum``."""

    maker: Decimal
    taker: Decimal
    quantum: Decimal = MONEY

    def of(self, qty: Decimal, price: Decimal, maker: bool) -> Decimal:
        return fee(qty, price, self.maker if maker else self.taker, self.quantum)


def check_effect(effect: str) -> None:
    if effect not in EFFECTS:
        raise MatchReject(10002, "effect must be GTC, IOC, FOK or POST_ONLY")


def crosses(is_buy: bool, limit: Decimal | None, price: Decimal) -> bool:
    """Whether an order on ``is_buy``'s side with ``limit`` (None: market) reaches ``price``."""
    if limit is None:
        return True
    return price <= limit if is_buy else price >= limit


def reduce_only_check(position: Decimal, is_buy: bool) -> None:
    """Refuse a reduce-only order with no position (30018) or in its direction (30019);
    ``position`` is signed (long > 0)."""
    if position == 0:
        raise MatchReject(30018, "Reduce-only order with no position")
    if (position > 0) == is_buy:
        raise MatchReject(30019, "Reduce-only order in the position's direction")


def closable(position: Decimal, is_buy: bool) -> Decimal:
    """How much of a signed ``position`` an order on ``is_buy``'s side can close."""
    if position == 0 or (position > 0) == is_buy:
        return ZERO
    return abs(position)


def clamp(remaining: Decimal, can_close: Decimal) -> Decimal | None:
    """A closing order's new remaining size: None when it fits, ZERO when it must be
    cancelled (nothing left to close), else ``can_close``."""
    if remaining <= can_close:
        return None
    return ZERO if can_close <= 0 else can_close


def fill_status(remaining: Decimal) -> str:
    return "FILLED" if remaining <= 0 else "PART_FILLED"


def cancel_status(filled: Decimal) -> str:
    return "PART_FILLED_CANCELED" if filled > 0 else "CANCELED"


def take(
    book: Liquidity,
    is_buy: bool,
    qty: Decimal,
    limit: Decimal | None,
    on_fill: Callable[[Fill], object],
) -> Decimal:
    """Take up to ``qty`` best price first, one maker per fill (booked by ``on_fill`` before
    the next is matched); return the quantity taken."""
    done = ZERO
    while (f := book.match_one(is_buy, qty - done, limit)) is not None:
        done += f.qty
        on_fill(f)
    return done


def enter(
    order: Taker,
    book: Liquidity,
    on_fill: Callable[[Fill], object],
    *,
    own: Iterable[tuple[_O, bool, Decimal]] = (),
    cancel_own: Callable[[_O], object] | None = None,
) -> Outcome:
    """Run an accepted order against ``book`` by the rules above. ``own``: the same account's
    open orders as (order, is_buy, price), for self-trade prevention, cancelled through
    ``cancel_own``; ``on_fill`` books each fill. The caller cancels or rests per the outcome."""
    is_buy, limit = order.is_buy, order.price
    hit = [o for o, buy, px in own if buy is not is_buy and crosses(is_buy, limit, px)]
    if order.effect == "POST_ONLY" and (hit or book.would_cross(is_buy, limit)):
        return "post_only"
    if cancel_own is not None:
        for o in hit:
            cancel_own(o)
    if order.effect == "FOK" and book.available(is_buy, limit) < order.remaining:
        return "fok"
    take(book, is_buy, order.remaining, limit, on_fill)
    if not order.open:
        return "done"
    if order.effect in ("IOC", "FOK") or limit is None:
        return "cancel"
    return "rest"
