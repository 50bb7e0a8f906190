"""Symbol trading rules (tick, qty step, min/max qty, price protection, status) and rounding.

Derived from a ``trading_pairs`` row as the reference's §3.3 prescribes: tick =
10^-quotePrecision, step = 10^-basePrecision, min qty = minTradeVolume.

The hot path (strategy, risk) counts prices in ticks and quantities in lots (steps), as ints.
``price_of`` and ``qty_of`` turn them back into the ``Decimal`` the journal and the wire carry,
in one canonical form: ``Decimal(n) * tick`` (``* step``), i.e. exactly the tick's (step's)
exponent, so ETHUSDT's 3000.10 is ``3000.10`` and 0.05 ETH is ``0.050`` (docs/benchmarks.md,
"Issue 12 item 1: integers on the hot path").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from procs.trading.model import OrderType, Side


class SymbolStatus(enum.StrEnum):
    OPEN = "OPEN"  # normal trading
    CANCEL_ONLY = "CANCEL_ONLY"  # cancels only, no new orders
    STOP = "STOP"  # no open, no close


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    """Trading rules of one symbol; every order price and qty passes through its rounding."""

    symbol: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    max_limit_qty: Decimal
    max_market_qty: Decimal
    price_protect_scope: Decimal  # limit price must stay within mark × (1 ± scope)
    status: SymbolStatus = SymbolStatus.OPEN
    symbol_id: int = -1
    # derived, in lots: the least qty, and the most a limit / market order may carry
    min_lots: int = field(init=False, compare=False, repr=False)
    max_limit_lots: int = field(init=False, compare=False, repr=False)
    max_market_lots: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("tick", "step", "min_qty", "max_limit_qty", "max_market_qty"):
            value: Decimal = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{self.symbol}: {name} must be positive, was {value}")
        if self.min_qty % self.step:
            raise ValueError(f"{self.symbol}: min_qty {self.min_qty} not a multiple of {self.step}")
        set_ = object.__setattr__
        set_(self, "min_lots", self.floor_lots(self.min_qty))  # exact: checked just above
        set_(self, "max_limit_lots", self.floor_lots(self.max_limit_qty))
        set_(self, "max_market_lots", self.floor_lots(self.max_market_qty))

    @property
    def tradable(self) -> bool:
        return self.status is SymbolStatus.OPEN

    def round_qty(self, qty: Decimal) -> Decimal:
        """Round ``qty`` down to the step (never send more than asked); 0 when below min_qty."""
        if qty <= 0:
            return Decimal(0)
        q = (qty / self.step).to_integral_value(rounding=ROUND_DOWN) * self.step
        return q if q >= self.min_qty else Decimal(0)

    def round_price(self, price: Decimal, side: Side | None = None) -> Decimal:
        """Round to the tick: passively for a side (buy down, sell up), else to the nearest."""
        if side is Side.BUY:
            mode = ROUND_FLOOR
        elif side is Side.SELL:
            mode = ROUND_CEILING
        else:
            mode = ROUND_HALF_EVEN
        return (price / self.tick).to_integral_value(rounding=mode) * self.tick

    def max_qty(self, order_type: OrderType) -> Decimal:
        return self.max_limit_qty if order_type is OrderType.LIMIT else self.max_market_qty

    def on_tick(self, price: Decimal) -> bool:
        return price > 0 and price % self.tick == 0

    def on_step(self, qty: Decimal) -> bool:
        return qty > 0 and qty % self.step == 0

    # -- ints: ticks and lots ------------------------------------------------------------------

    def price_of(self, ticks: int) -> Decimal:
        """The canonical ``Decimal`` of a price in ticks: the tick's exponent."""
        return Decimal(ticks) * self.tick

    def qty_of(self, lots: int) -> Decimal:
        """The canonical ``Decimal`` of a quantity in lots: the step's exponent."""
        return Decimal(lots) * self.step

    def ticks_of(self, price: Decimal) -> int | None:
        """``price`` in ticks; None when it is not a multiple of the tick."""
        return exact_units(price, self.tick)

    def lots_of(self, qty: Decimal) -> int | None:
        """``qty`` in lots; None when it is not a multiple of the step."""
        return exact_units(qty, self.step)

    def lots_toward_zero(self, qty: Decimal) -> int:
        """``qty`` in lots, an off-step remainder dropped (toward zero). Every quantity our
        venues report is on the step; this only keeps an impossible one from crashing."""
        return units_toward_zero(qty, self.step)

    def floor_lots(self, limit: Decimal) -> int:
        """The most lots whose qty is <= ``limit`` (a cap pre-scaled to lots, exactly)."""
        return floor_units(limit, self.step)

    def max_lots(self, order_type: OrderType) -> int:
        return self.max_limit_lots if order_type is OrderType.LIMIT else self.max_market_lots


def _dec(raw: Mapping[str, object], key: str) -> Decimal:
    value = raw[key]
    return Decimal(str(value))


def instrument_from_pair(raw: Mapping[str, object], symbol_id: int = -1) -> Instrument:
    """Build an ``Instrument`` from one ``trading_pairs`` row (numbers as strings or numbers)."""
    base_prec = int(str(raw["basePrecision"]))
    quote_prec = int(str(raw["quotePrecision"]))
    step = Decimal(1).scaleb(-base_prec)
    status = SymbolStatus(str(raw.get("symbolStatus", "OPEN")).upper())
    if raw.get("isApiSupported") is False:
        status = SymbolStatus.STOP
    return Instrument(
        symbol=str(raw["symbol"]),
        tick=Decimal(1).scaleb(-quote_prec),
        step=step,
        min_qty=_dec(raw, "minTradeVolume"),
        max_limit_qty=_dec(raw, "maxLimitOrderVolume"),
        max_market_qty=_dec(raw, "maxMarketOrderVolume"),
        price_protect_scope=_dec(raw, "priceProtectScope"),
        status=status,
        symbol_id=symbol_id,
    )


def exact_units(value: Decimal, unit: Decimal) -> int | None:
    """``value / unit`` when it is a whole number (exactly: no 28-digit rounding), else None."""
    a, b = value.as_integer_ratio()
    c, d = unit.as_integer_ratio()
    n, r = divmod(a * d, b * c)
    return None if r else n


def units_toward_zero(value: Decimal, unit: Decimal) -> int:
    """``value / unit`` exactly when whole; otherwise its remainder dropped toward zero."""
    a, b = value.as_integer_ratio()
    c, d = unit.as_integer_ratio()
    n = abs(a) * d // (b * c)
    return n if a >= 0 else -n


def floor_units(value: Decimal, unit: Decimal) -> int:
    """floor(``value / unit``), exactly; ``n <= floor_units(v, u)`` iff ``n * u <= v`` for an
    int ``n`` and a positive ``unit``: the pre-scaling of a limit for integer compares."""
    a, b = value.as_integer_ratio()
    c, d = unit.as_integer_ratio()
    return (a * d) // (b * c)


def to_decimal(value: float, quantum: Decimal) -> Decimal:
    """Turn a float from a ring record into the nearest multiple of ``quantum``, as a Decimal."""
    units = (Decimal(repr(value)) / quantum).to_integral_value(rounding=ROUND_HALF_EVEN)
    return units * quantum


class DecimalGrid:
    """``to_decimal`` for one quantum, memoised: book prices and sizes repeat from book to book
    (a hit costs a dict lookup instead of ~2 µs). Bounded: cleared when ``max_size`` is reached."""

    __slots__ = ("_max", "_memo", "_units", "quantum")

    def __init__(self, quantum: Decimal, max_size: int = 4096) -> None:
        self.quantum = quantum
        self._max = max_size
        self._memo: dict[float, Decimal] = {}
        self._units: dict[float, int] = {}

    def units(self, value: float) -> int:
        """The multiple of ``quantum`` that ``self(value)`` is, as an int (ticks, lots)."""
        memo = self._units
        n = memo.get(value)
        if n is not None:
            return n
        n = int((Decimal(repr(value)) / self.quantum).to_integral_value(rounding=ROUND_HALF_EVEN))
        if len(memo) >= self._max:
            memo.clear()
        memo[value] = n
        return n

    def __call__(self, value: float) -> Decimal:
        memo = self._memo
        d = memo.get(value)
        if d is not None:
            return d
        d = to_decimal(value, self.quantum)
        if value == 0:
            return d  # 0.0 and -0.0 are one key but not one Decimal: not memoised
        if len(memo) >= self._max:
            memo.clear()
        memo[value] = d
        return d
