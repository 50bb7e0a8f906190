"""``BacktestConfig``: the optional ``[backtest]`` section of the group's config file.

Everything else a backtest runs on comes from the sections the live processes read
(``[features]``, ``[inference]``, ``[execution]``), decoded by the same types: a config the live
code refuses is refused here too.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from procs.backtest.latency import LatencyConfig
from procs.matching import QueueConfig

__all__ = ["BacktestConfig"]

PosFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]


class BacktestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    latency: LatencyConfig = LatencyConfig()
    queue: QueueConfig = QueueConfig()
    # book received -> feat published -> sig published; None: the capture's recorded medians
    # (its feat and sig streams), else feat_latency_default_s / sig_latency_default_s
    feat_latency_s: NonNegFloat | None = None
    sig_latency_s: NonNegFloat | None = None
    feat_latency_default_s: NonNegFloat = 50e-6
    sig_latency_default_s: NonNegFloat = 100e-6
    funding_rate: Decimal = Decimal(0)  # per settlement; longs pay a positive rate
    funding_interval_s: PosFloat = 8 * 3600.0  # settlements at multiples of this (UTC epoch)
    initial_balance_usdt: Decimal = Decimal(10_000)  # Sharpe/Sortino returns are on this
    equity_interval_s: PosFloat = 1.0  # equity, position and drawdown sampled this often
    markout_horizons_s: list[PosFloat] = msgspec.field(default_factory=lambda: [1.0, 10.0, 60.0])
    progress: Literal["auto", "on", "off"] = "auto"  # auto: a bar when stderr is a terminal
    # live: hand the feature engine and the model the batches the live processes did (from the
    # capture's publish stamps; one book per batch where it has none): bit-identical records.
    # fast: chunks of chunk_books books and the model's batch_max rows (last bits may differ)
    batching: Literal["live", "fast"] = "live"
    chunk_books: Annotated[int, msgspec.Meta(gt=0)] = 65_536
