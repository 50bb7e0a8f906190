"""Fee and funding arithmetic: one rounding rule for simex, paper mode and the backtest."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

__all__ = ["MONEY", "fee", "funding_amount"]

MONEY: Final = Decimal("1e-12")  # booked amounts: every later sum stays exact in 28 digits


def fee(qty: Decimal, price: Decimal, rate: Decimal, quantum: Decimal = MONEY) -> Decimal:
    """The fee of one fill (positive: paid; a negative maker rate is a rebate), half-even."""
    return (qty * price * rate).quantize(quantum, rounding=ROUND_HALF_EVEN)


def funding_amount(
    signed_qty: Decimal, mark: Decimal, rate: Decimal, quantum: Decimal = MONEY
) -> Decimal:
    """Funding received by a position of ``signed_qty`` (long > 0) at ``mark`` and ``rate``:
    a positive rate makes longs pay shorts. Received > 0, paid < 0."""
    paid = (abs(signed_qty) * mark * rate).quantize(quantum, rounding=ROUND_HALF_EVEN)
    return -paid if signed_qty > 0 else paid
