"""Symbol trading rules (tick, qty step, min/max qty, price protection, status) and rounding.

Derived from a ``trading_pairs`` row as the reference's §3.3 prescribes: tick =
10^-quotePrecision, step = 10^-basePrecision, min qty = minTradeVolume.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
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

    def __post_init__(self) -> None:
        for name in ("tick", "step", "min_qty", "max_limit_qty", "max_market_qty"):
            value: Decimal = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{self.symbol}: {name} must be positive, was {value}")
        if self.min_qty % self.step:
            raise ValueError(f"{self.symbol}: min_qty {self.min_qty} not a multiple of {self.step}")

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


def to_decimal(value: float, quantum: Decimal) -> Decimal:
    """Turn a float from a ring record into the nearest multiple of ``quantum``, as a Decimal."""
    units = (Decimal(repr(value)) / quantum).to_integral_value(rounding=ROUND_HALF_EVEN)
    return units * quantum


class DecimalGrid:
    """``to_decimal`` for one quantum, memoised: book prices and sizes repeat from book to book
    (a hit costs a dict lookup instead of ~2 µs). Bounded: cleared when ``max_size`` is reached."""

    __slots__ = ("_max", "_memo", "quantum")

    def __init__(self, quantum: Decimal, max_size: int = 4096) -> None:
        self.quantum = quantum
        self._max = max_size
        self._memo: dict[float, Decimal] = {}

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
