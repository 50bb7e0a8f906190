"""Features and signals for a backtest: the live feature engine and the live scorer, run over
a capture's books and trades in receive order.

``FeatureEngine.update`` gets the books in chunks, each with every trade received up to the
chunk's last book: the engine's own contract (procs.features.engine) under which any chunking
gives the same records as the live process's one-book-at-a-time stream. Scores come from the
champion model, or from the rule scorer (``procs.scoring.fallback_score``) where the live
process would fall back (no model, or a batch with a non-finite or out-of-range score).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

import numpy as np

from procs.features.engine import EngineConfig, FeatureEngine
from procs.inference.health import check_output
from procs.scoring import fallback_score
from shm.records import FEAT_V1, FLAG_FALLBACK, SIG_V1, TRADE_V1, Records

__all__ = ["Scorer", "compute_signals"]

_COPIED: Final = ("seq", "ts_event_ns", "ts_recv_ns", "ts_feat_ns", "symbol_id", "mid")
_NO_TRADES: Final = np.zeros(0, dtype=TRADE_V1)


class Scorer(Protocol):
    """The inference ``Model`` seam (``OnnxModel``)."""

    @property
    def version(self) -> int: ...

    def score(self, x: np.ndarray) -> np.ndarray: ...


def compute_signals(
    books: Records,
    trades: Records,
    *,
    n_symbols: int,
    mark_degenerate_stale: bool,
    model: Scorer | None,
    batch_max: int,
    feat_latency_ns: int,
    sig_latency_ns: int,
    chunk_books: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[Records, Records]:
    """One FEAT_V1 and one SIG_V1 per book, in the books' order."""
    engine = FeatureEngine(n_symbols, EngineConfig(mark_degenerate_stale=mark_degenerate_stale))
    feats: Records = np.zeros(books.size, dtype=FEAT_V1)
    t_recv = trades["ts_recv_ns"]
    ti = 0
    for start in range(0, books.size, chunk_books):
        chunk = books[start : start + chunk_books]
        tj = int(np.searchsorted(t_recv, chunk["ts_recv_ns"][-1], side="right"))
        feats[start : start + chunk.size] = engine.update(chunk, trades[ti:tj])
        ti = tj
        if progress is not None:
            progress(chunk.size)
    feats["ts_feat_ns"] = feats["ts_recv_ns"] + feat_latency_ns
    sigs: Records = np.zeros(books.size, dtype=SIG_V1)
    for name in _COPIED:
        sigs[name] = feats[name]
    sigs["challenger"] = np.nan
    sigs["ts_sig_ns"] = feats["ts_feat_ns"] + sig_latency_ns
    for start in range(0, books.size, batch_max):
        _score(feats[start : start + batch_max], sigs[start : start + batch_max], model)
    return feats, sigs


def _score(feat: Records, sig: Records, model: Scorer | None) -> None:
    x = feat["x"]
    if model is not None:
        y = model.score(x)
        if check_output(y, 0, 1) is None:  # values only: a backtest has no latency budget
            sig["score"] = y
            sig["model_version"] = model.version
            sig["flags"] = feat["flags"]
            return
    sig["score"] = fallback_score(x)
    sig["model_version"] = 0
    sig["flags"] = feat["flags"] | FLAG_FALLBACK
