"""Positions and PnL in Decimal: realised, unrealised vs mark, fees, funding; one-way and hedge.

The net position per symbol is also kept in lots (ints), for strategy and risk.

Each leg keeps its signed qty and signed cost basis (Σ signed qty × price of what is still open), so
realised − cost always equals the trade cash flow exactly, whatever the rounding of averages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Final

from procs.trading.instruments import units_toward_zero
from procs.trading.model import ZERO, Fill, FundingEvent, PositionSide, Side

NS_PER_DAY: Final = 86_400 * 1_000_000_000
# the cost removed on a partial close is rounded here so every later sum stays exact in 28 digits
COST_QUANTUM: Final = Decimal("1e-12")


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionSnapshot:
    """One position leg: signed ``qty`` (short < 0) and signed ``cost`` basis, in quote coin."""

    symbol: str
    position_side: PositionSide = PositionSide.BOTH
    qty: Decimal = ZERO
    cost: Decimal = ZERO
    realised: Decimal = ZERO  # closed-trade PnL before fees and funding
    fees: Decimal = ZERO  # paid (positive) or rebated (negative), cumulative
    funding: Decimal = ZERO  # received (positive) or paid (negative), cumulative
    ts_ns: int = 0

    @property
    def avg_price(self) -> Decimal:
        return self.cost / self.qty if self.qty else ZERO

    def unrealised(self, mark: Decimal) -> Decimal:
        return self.qty * mark - self.cost

    def net(self, mark: Decimal) -> Decimal:
        return self.realised + self.unrealised(mark) - self.fees + self.funding


@dataclass(frozen=True, slots=True)
class PnlTotals:
    realised: Decimal
    unrealised: Decimal
    fees: Decimal
    funding: Decimal

    @property
    def net(self) -> Decimal:
        return self.realised + self.unrealised - self.fees + self.funding


def _sign(x: Decimal) -> int:
    return (x > 0) - (x < 0)


def apply_trade(p: PositionSnapshot, side: Side, qty: Decimal, price: Decimal) -> PositionSnapshot:
    """Return ``p`` after a trade of ``qty`` at ``price``: open, reduce, close or flip."""
    dq = side.sign * qty
    if p.qty == 0 or _sign(p.qty) == _sign(dq):
        return replace(p, qty=p.qty + dq, cost=p.cost + dq * price)
    closing = min(qty, abs(p.qty))
    if closing == abs(p.qty):
        removed = p.cost
    else:
        removed = (p.cost * closing / abs(p.qty)).quantize(COST_QUANTUM)
    realised = p.realised + _sign(p.qty) * closing * price - removed
    q, cost = p.qty + side.sign * closing, p.cost - removed
    rest = qty - closing
    if rest:
        q, cost = q + side.sign * rest, cost + side.sign * rest * price
    return replace(p, qty=q, cost=cost, realised=realised)


class PositionBook:
    """All position legs of the account; the only place fills and funding change positions."""

    def __init__(self, *, hedge: bool = False) -> None:
        self.hedge = hedge
        self._legs: dict[tuple[str, PositionSide], PositionSnapshot] = {}
        self._net: dict[str, Decimal] = {}  # net_qty per symbol, kept by _put
        self._steps: dict[str, Decimal] = {}  # the qty step of each traded symbol
        self._lots: dict[str, int] = {}  # net qty in lots per traded symbol (the hot path's)
        self.version = 0  # bumped by every change of a leg: lets readers keep derived values

    def set_step(self, symbol: str, step: Decimal) -> None:
        """Keep ``symbol``'s net position in lots of ``step`` too (``net_lots``)."""
        self._steps[symbol] = step
        self._lots[symbol] = units_toward_zero(self._net.get(symbol, ZERO), step)

    def _put(self, key: tuple[str, PositionSide], leg: PositionSnapshot) -> None:
        """The one write of a leg."""
        self._legs[key] = leg
        sym = key[0]
        net = self._net[sym] = sum((p.qty for (s, _), p in self._legs.items() if s == sym), ZERO)
        step = self._steps.get(sym)
        if step is not None:
            self._lots[sym] = units_toward_zero(net, step)  # off-step: none of our venues
        self.version += 1

    def _key(self, symbol: str, position_side: PositionSide) -> tuple[str, PositionSide]:
        if self.hedge == (position_side is PositionSide.BOTH):
            mode = "hedge" if self.hedge else "one-way"
            raise ValueError(f"{position_side} leg in {mode} mode ({symbol})")
        return (symbol, position_side)

    def position(
        self, symbol: str, position_side: PositionSide = PositionSide.BOTH
    ) -> PositionSnapshot:
        key = self._key(symbol, position_side)
        return self._legs.get(key) or PositionSnapshot(symbol=symbol, position_side=position_side)

    def net_qty(self, symbol: str) -> Decimal:
        """Signed exposure in base coin, both hedge legs together."""
        return self._net.get(symbol, ZERO)

    def net_lots(self, symbol: str) -> int:
        """``net_qty`` in lots of the step given by ``set_step`` (0 for a symbol without one)."""
        return self._lots.get(symbol, 0)

    def snapshots(self) -> list[PositionSnapshot]:
        return list(self._legs.values())

    def symbols(self) -> list[str]:
        """Symbols with a leg, in the order their first leg appeared (a set's order would
        change with the string hash seed from process to process: not deterministic)."""
        return list(dict.fromkeys(s for s, _ in self._legs))

    def restore(self, legs: Iterable[PositionSnapshot]) -> None:
        for p in legs:
            self._put(self._key(p.symbol, p.position_side), p)

    def apply_fill(self, fill: Fill) -> PositionSnapshot:
        """Book one fill; return the leg after it."""
        key = self._key(fill.symbol, fill.position_side)
        p = self.position(fill.symbol, fill.position_side)
        after = apply_trade(p, fill.side, fill.qty, fill.price)
        if fill.position_side is not PositionSide.BOTH:
            want = 1 if fill.position_side is PositionSide.LONG else -1
            if _sign(after.qty) == -want:
                raise ValueError(f"fill {fill.fill_id} flips the {fill.position_side} leg")
        after = replace(after, fees=p.fees + fill.fee, ts_ns=fill.ts_ns)
        self._put(key, after)
        return after

    def apply_funding(self, ev: FundingEvent) -> PositionSnapshot:
        key = self._key(ev.symbol, ev.position_side)
        p = self.position(ev.symbol, ev.position_side)
        after = replace(p, funding=p.funding + ev.amount, ts_ns=ev.ts_ns)
        self._put(key, after)
        return after

    def totals(self, marks: Mapping[str, Decimal]) -> PnlTotals:
        """Sum every leg; a leg with an open qty needs its symbol in ``marks``."""
        legs = self._legs.values()
        unrealised = sum((p.unrealised(marks[p.symbol]) for p in legs if p.qty), ZERO)
        return PnlTotals(
            realised=sum((p.realised for p in legs), ZERO),
            unrealised=unrealised,
            fees=sum((p.fees for p in legs), ZERO),
            funding=sum((p.funding for p in legs), ZERO),
        )

    def priced_totals(self, marks: Mapping[str, Decimal]) -> PnlTotals | None:
        """``totals``, or None while an open leg has no price in ``marks`` yet."""
        if any(p.qty and p.symbol not in marks for p in self._legs.values()):
            return None
        return self.totals(marks)

    def gross_notional(self, marks: Mapping[str, Decimal]) -> Decimal:
        return sum((abs(p.qty) * marks[p.symbol] for p in self._legs.values() if p.qty), ZERO)


class DailyPnl:
    """Net PnL since the UTC day began, and the drawdown from its running peak.

    The first update of a day takes that moment's net as the day's start. ``state`` and
    ``restore`` carry the start and peak across a restart (the journal stores them).
    """

    def __init__(self) -> None:
        self._day = -1
        self._day_start = ZERO
        self._peak: Decimal | None = None
        self.net = ZERO

    def update(self, net: Decimal, ts_ns: int) -> None:
        day = ts_ns // NS_PER_DAY
        if day != self._day:
            self._day, self._day_start = day, net
        self.net = net
        self._peak = net if self._peak is None else max(self._peak, net)

    def state(self) -> tuple[int, Decimal, Decimal]:
        return self._day, self._day_start, self._peak if self._peak is not None else self.net

    def restore(self, day: int, day_start: Decimal, peak: Decimal) -> None:
        self._day, self._day_start, self._peak = day, day_start, peak

    @property
    def day_pnl(self) -> Decimal:
        return self.net - self._day_start

    @property
    def drawdown(self) -> Decimal:
        return ZERO if self._peak is None else self._peak - self.net
