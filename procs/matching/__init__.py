"""The matching library: the one set of matching rules that simex, execution's paper mode and the
backtest use.

- ``book``: a full price-time-priority order book (simex's exchange core matches on it).
- ``queue``: queue-position models for our orders resting behind displayed size we cannot see
  into (risk-averse, or a probabilistic split of cancellations ahead/behind, as hftbacktest).
- ``engine``: ``QueueMatcher``, our orders against an observed L2 book and its trade prints:
  post-only, IOC, FOK, GTC, reduce-only, partial fills, maker/taker fees (paper and backtest).
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
    OrderSpec,
    QueueMatcher,
    TradePrint,
)
from procs.matching.fees import fee, funding_amount
from procs.matching.queue import QueueConfig, QueueModel, make_queue_model

__all__ = [
    "BookLevels",
    "BookView",
    "Fill",
    "Level",
    "MatchOrder",
    "OrderBook",
    "OrderSpec",
    "QueueConfig",
    "QueueMatcher",
    "QueueModel",
    "Resting",
    "TradePrint",
    "fee",
    "funding_amount",
    "make_queue_model",
]
