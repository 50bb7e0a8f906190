"""Queue-position models: where our resting order stands in the displayed size at its price.

We cannot see the venue's queue. We join behind everything displayed at our price
(``ahead_fraction`` of it, 1.0 by default) and move up as trades print at the price (``on_trade``)
and as the level shrinks (``on_depth``). A shrink that trades did not explain is cancellations;
the models differ in where those are assumed to be, as in hftbacktest:

- ``risk_averse``: only a shrink below our position moves us (cancellations are all behind us).
- ``power``: a share ``f(back) / (f(back) + f(front))`` of the cancellations is behind us and the
  rest ahead, with ``f(x) = x ** power`` (hftbacktest's ``PowerProbQueueFunc``); a larger power
  puts more of them where more size is.

A position below zero is size filled: the matcher fills that much of our order.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Annotated, Final, Literal, Protocol

import msgspec

__all__ = ["PowerProbQueue", "QueueConfig", "QueueModel", "RiskAverseQueue", "make_queue_model"]

ZERO: Final = Decimal(0)


class QueueConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How resting orders queue (``[backtest.queue]``; paper mode takes ``ahead_fraction``)."""

    model: Literal["risk_averse", "power"] = "risk_averse"
    power: Annotated[float, msgspec.Meta(gt=0)] = 2.0  # the power model's exponent
    ahead_fraction: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0  # displayed size ahead


class QueueModel(Protocol):
    """Moves a queue position (size ahead of us, ``front``) as the level changes."""

    name: str

    def on_depth(
        self, front: Decimal, back_traded: Decimal, prev: Decimal, new: Decimal
    ) -> Decimal:
        """The new ``front`` after the level went from ``prev`` to ``new``; ``back_traded`` is
        what trades at the price already took off the level since the last depth change."""
        ...


class RiskAverseQueue:
    """Cancellations are behind us: only a level smaller than our position moves us up."""

    name = "risk_averse"

    def on_depth(
        self, front: Decimal, back_traded: Decimal, prev: Decimal, new: Decimal
    ) -> Decimal:
        return min(front, new)


class PowerProbQueue:
    """A share ``back**n / (back**n + front**n)`` of cancellations is behind us."""

    name = "power"

    def __init__(self, power: float) -> None:
        self.power = power

    def on_depth(
        self, front: Decimal, back_traded: Decimal, prev: Decimal, new: Decimal
    ) -> Decimal:
        chg = prev - new - back_traded  # shrink not already explained by trades
        if chg <= 0 or front <= 0:
            return min(front, new)
        back = max(prev - front, ZERO)
        fb, ff = float(back) ** self.power, float(front) ** self.power
        prob = fb / (fb + ff) if fb + ff > 0 else 1.0  # share of cancels behind us
        est = float(front) - (1.0 - prob) * float(chg) + min(float(back) - prob * float(chg), 0.0)
        # back on the level's own qty grid, rounded up: we never assume more progress than seen
        exp = min(new.as_tuple().exponent, prev.as_tuple().exponent)
        q = Decimal(1).scaleb(int(exp)) if isinstance(exp, int) else Decimal(1)
        return min(Decimal(repr(max(est, 0.0))).quantize(q, rounding=ROUND_CEILING), new)


def make_queue_model(config: QueueConfig) -> QueueModel:
    if config.model == "power":
        return PowerProbQueue(config.power)
    return RiskAverseQueue()
