"""Features and signals for a backtest: the live feature engine and the live scorer, run over
a capture's books and trades in ring order.

``FeatureEngine.update`` gets the books in chunks, each with every trade received up to the
chunk's last book: the engine's own contract (procs.featurecalc.engine) under which any chunking
gives the same records as the live process's one-book-at-a-time stream. Scores come from the
champion model, or from the rule scorer (``procs.models.scoring.fallback_score``) where the live
process would fall back (no model, or a batch with a non-finite or out-of-range score).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

import numpy as np

from procs.featurecalc.engine import EngineConfig, FeatureEngine
from procs.models.health import check_output
from procs.models.scoring import fallback_score
from shm.records import FEAT_V1, FLAG_FALLBACK, SIG_V1, TRADE_V1, Records

__all__ = ["Scorer", "compute_signals"]

_COPIED: Final = ("seq", "ts_event_ns", "ts_recv_ns", "ts_feat_ns", "symbol_id", "mid")
_NO_TRADES: Final = np.zeros(0, dtype=TRADE_V1)


class Scorer(Protocol):
    """The inference ``Model`` seam (``OnnxModel``)."""

    @property
    def version(self) -> int: ...

    def score(self, x: np.ndarray) -> np.ndarray: ...


def live_batches(books: Records, recorded: Records, stamp: str) -> np.ndarray:
    """Batch ids for ``books`` that reproduce the live process's batching: records the live
    process made in one call share their publish ``stamp`` (ts_feat_ns or ts_sig_ns). Books the
    capture has no record for are a batch of their own (the live path when it keeps up)."""
    ids = np.arange(books.size, dtype=np.int64)
    if recorded.size == 0:
        return ids
    key = dict(zip(book_keys(recorded), recorded[stamp].tolist(), strict=True))
    stamps = [key.get(k) for k in book_keys(books)]
    for i in range(1, books.size):
        if stamps[i] is not None and stamps[i] == stamps[i - 1]:
            ids[i] = ids[i - 1]
    return ids


def book_keys(r: Records) -> list[tuple[int, int, int]]:
    """Each record's book identity: (symbol_id, ts_event_ns, ts_recv_ns)."""
    return list(
        zip(
            r["symbol_id"].tolist(),
            r["ts_event_ns"].tolist(),
            r["ts_recv_ns"].tolist(),
            strict=True,
        )
    )


def _runs(batch: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """[start, stop) of each run of equal batch ids, no longer than ``limit``."""
    edges = np.flatnonzero(np.diff(batch)) + 1
    out = []
    for a, b in zip(np.r_[0, edges].tolist(), np.r_[edges, batch.size].tolist(), strict=True):
        out += [(i, min(i + limit, b)) for i in range(a, b, limit)]
    return out


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
    feat_batches: np.ndarray | None = None,
    sig_batches: np.ndarray | None = None,
    recorded: Records | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Records, Records]:
    """One FEAT_V1 and one SIG_V1 per book, in the books' order.

    ``feat_batches``/``sig_batches`` (``live_batches``): hand the engine and the model the
    same batches the live processes did, for bit-identical records (a vectorised path may round
    a last bit differently from the one-record path, and a model's kernels differ by batch
    size). None: chunks of ``chunk_books`` books and ``batch_max`` rows (fast). ``recorded``:
    the capture's sig records, whose publish stamps replace the modelled ones where a book has
    one (execution then reads each signal when the live one could)."""
    engine = FeatureEngine(n_symbols, EngineConfig(mark_degenerate_stale=mark_degenerate_stale))
    feats: Records = np.zeros(books.size, dtype=FEAT_V1)
    t_recv = np.maximum.accumulate(trades["ts_recv_ns"]) if trades.size else trades["ts_recv_ns"]
    ti = 0
    if feat_batches is None:
        feat_batches = np.arange(books.size) // chunk_books
    done = 0
    for a, b in _runs(feat_batches, books.size or 1):
        chunk = books[a:b]
        tj = int(np.searchsorted(t_recv, chunk["ts_recv_ns"][-1], side="right"))
        feats[a:b] = engine.update(chunk, trades[ti:tj])
        ti = tj
        if progress is not None and b - done >= 4096:
            progress(b - done)
            done = b
    if progress is not None:
        progress(books.size - done)
    feats["ts_feat_ns"] = feats["ts_recv_ns"] + feat_latency_ns
    sigs: Records = np.zeros(books.size, dtype=SIG_V1)
    for name in _COPIED:
        sigs[name] = feats[name]
    sigs["challenger"] = np.nan
    sigs["ts_sig_ns"] = feats["ts_feat_ns"] + sig_latency_ns
    if recorded is not None:
        _recorded_stamps(books, feats, sigs, recorded)
    if sig_batches is None:
        sig_batches = np.arange(books.size) // batch_max
    for a, b in _runs(sig_batches, batch_max):
        _score(feats[a:b], sigs[a:b], model)
    return feats, sigs


def _recorded_stamps(books: Records, feats: Records, sigs: Records, recorded: Records) -> None:
    if recorded.size == 0:
        return
    key = {k: i for i, k in enumerate(book_keys(recorded))}
    ours, theirs = [], []
    for i, k in enumerate(book_keys(books)):
        j = key.get(k)
        if j is not None:
            ours.append(i)
            theirs.append(j)
    if ours:
        for name in ("ts_feat_ns", "ts_sig_ns"):
            sigs[name][ours] = recorded[name][theirs]
        feats["ts_feat_ns"][ours] = recorded["ts_feat_ns"][theirs]


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
