"""Feature engine: pure, incremental indicators over BOOK_V1/TRADE_V1 batches -> FEAT_V1.

The engine never opens a socket, segment or file; the features process, the trainer and the
backtester all call it, so what was trained on is what trades.
"""

from __future__ import annotations

from procs.featurecalc.engine import (
    FEATURES,
    HORIZONS_NS,
    N_FEATURES,
    EngineConfig,
    FeatureEngine,
    compute_batch,
    feature_index,
)

__all__ = [
    "FEATURES",
    "HORIZONS_NS",
    "N_FEATURES",
    "EngineConfig",
    "FeatureEngine",
    "compute_batch",
    "feature_index",
]
