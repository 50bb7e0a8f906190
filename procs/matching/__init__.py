"""The matching library: the one set of matching rules that simex, execution's paper mode and the
backtest use (docs/architecture.md, "Matching").

- ``rules``: what every incoming order goes through (``enter``: post-only, self-trade
  prevention, FOK, taking best price first, IOC/market remainder, what rests), reduce-only
  checks and clamps, statuses, the fee schedule. It runs against a ``Liquidity``:
- ``book``: a full price-time-priority order book (simex: every participant's order rests in it);
- ``engine``: ``QueueMatcher``, our orders against an observed L2 book (``ObservedLevels``) and
  its trade prints (paper and backtest), resting orders placed by
- ``queue``: queue-position models for our orders resting behind displayed size we cannot see
  into (risk-averse, or a probabilistic split of cancellations ahead/behind, as hftbacktest).
- ``fees``: fee and funding arithmetic shared by all three.

Pure logic: no I/O, no clocks (every call takes its time), no imports from program packages.
"""

from __future__ import annotations

from procs.matching.book import Fill, OrderBook, Resting
from procs.matching.engine import (
    BookLevels,
    BookView,
    Level,
    MatchOrder,
    ObservedLevels,
    OrderSpec,
    QueueMatcher,
    TradePrint,
)
from procs.matching.fees import fee, funding_amount
from procs.matching.queue import QueueConfig, QueueModel, make_queue_model
from procs.matching.rules import FeeSchedule, Liquidity, MatchReject, enter, take

__all__ = [
    "BookLevels",
    "BookView",
    "FeeSchedule",
    "Fill",
    "Level",
    "Liquidity",
    "MatchOrder",
    "MatchReject",
    "ObservedLevels",
    "OrderBook",
    "OrderSpec",
    "QueueConfig",
    "QueueMatcher",
    "QueueModel",
    "Resting",
    "TradePrint",
    "enter",
    "fee",
    "funding_amount",
    "make_queue_model",
    "take",
]
