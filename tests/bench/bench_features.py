"""Feature engine throughput: book updates/s streamed in batches vs one bare numpy pass.

The baseline computes the same features for one symbol over the whole capture with plain numpy
(no per-symbol state, no batching); the bench checks it agrees with the engine before timing.
The bare pass is memory-bound on big inputs (its temporaries are [n, 2, 15] float64 arrays): on
the development machine it ran ~680 k books/s at 20 k books and ~430 k at 200 k, so the capture
size is kept at 50 k and batched engine runs above ~256 books can beat it.
"""

from __future__ import annotations

import time

import numpy as np

from procs.featurecalc import FEATURES, N_FEATURES, FeatureEngine, compute_batch
from procs.featurecalc.book import book_features
from procs.featurecalc.engine import (
    COUNT_WINDOW_NS,
    RETURN_HORIZONS_NS,
    RV_WINDOWS_NS,
    TFI_WINDOWS_NS,
    VWAP_WINDOWS_NS,
)
from procs.ml.synth import synthetic_market
from tests.bench._common import Result

BATCHES = (1, 16, 64, 256, 1024)
MAIN_BATCH = 64


def bare_numpy_pass(books: np.ndarray, trades: np.ndarray) -> np.ndarray:
    """All features of a single-symbol capture in one vectorised pass (sorted stamps assumed)."""
    bf = book_features(books)
    key = books["ts_recv_ns"]
    pos = np.maximum.accumulate(np.where(bf.ok, np.arange(key.size), -1))
    mid = np.where(pos >= 0, bf.mid[np.maximum(pos, 0)], 0.0)
    prev = np.concatenate(([0.0], mid[:-1]))
    both = (prev > 0) & (mid > 0)
    r = np.where(both, np.log(np.where(both, mid / np.where(both, prev, 1.0), 1.0)), 0.0)
    c_r2 = np.concatenate(([0.0], np.cumsum(r * r)))
    tk = trades["ts_recv_ns"]
    q = trades["qty"]
    c_q = np.concatenate(([0.0], np.cumsum(q)))
    c_pq = np.concatenate(([0.0], np.cumsum(trades["px"] * q)))
    c_sq = np.concatenate(([0.0], np.cumsum(trades["side"] * q)))
    hi = np.searchsorted(tk, key, "right")
    cols = {
        "spread_bps": bf.spread_bps,
        "imbalance_1": bf.imbalance[:, 0],
        "imbalance_5": bf.imbalance[:, 1],
        "imbalance_15": bf.imbalance[:, 2],
        "microprice_dev_bps": bf.microprice_dev_bps,
        "book_ok": bf.ok.astype(np.float64),
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        for w in sorted(set(VWAP_WINDOWS_NS + TFI_WINDOWS_NS + (COUNT_WINDOW_NS,))):
            lo = np.searchsorted(tk, key - w, "right")
            wq = c_q[hi] - c_q[lo]
            sfx = f"{w // 10**9}s"
            if w in VWAP_WINDOWS_NS:
                vwap = (c_pq[hi] - c_pq[lo]) / wq
                cols[f"vwap_dev_bps_{sfx}"] = np.where(wq > 0, (vwap - mid) / mid * 1e4, 0.0)
            if w in TFI_WINDOWS_NS:
                cols[f"trade_flow_imbalance_{sfx}"] = np.where(
                    wq > 0, (c_sq[hi] - c_sq[lo]) / wq, 0
                )
            if w == COUNT_WINDOW_NS:
                cols[f"log1p_trades_{sfx}"] = np.log1p(hi - lo)
        for h in RETURN_HORIZONS_NS:
            j = np.searchsorted(key, key - h, "right") - 1
            m0 = np.where(j >= 0, mid[np.maximum(j, 0)], 0.0)
            cols[f"return_bps_{h // 10**9}s"] = np.where(m0 > 0, np.log(mid / m0) * 1e4, 0.0)
        own = np.arange(key.size) + 1
        for w in RV_WINDOWS_NS:
            lo = np.searchsorted(key, key - w, "right")
            cols[f"realised_vol_bps_{w // 10**9}s"] = (
                np.sqrt(np.maximum(c_r2[own] - c_r2[lo], 0)) * 1e4
            )
    return np.stack([cols[n] for n in FEATURES], axis=1).astype(np.float32)


def _stream(books: np.ndarray, trades: np.ndarray, batch: int) -> float:
    eng = FeatureEngine(1)
    t_at = np.searchsorted(trades["ts_recv_ns"], books["ts_recv_ns"], "right")
    t0 = 0
    start = time.perf_counter()
    for b0 in range(0, books.size, batch):
        b1 = min(b0 + batch, books.size)
        t1 = int(t_at[b1 - 1])
        eng.update(books[b0:b1], trades[t0:t1])
        t0 = t1
    return time.perf_counter() - start


def run(quick: bool) -> list[Result]:
    n = 20_000 if quick else 50_000
    repeats = 2 if quick else 3
    books, trades = synthetic_market(seed=1, n_books=n)
    ref = compute_batch(books, trades)["x"][:, :N_FEATURES]
    bare = bare_numpy_pass(books, trades)
    np.testing.assert_allclose(bare, ref, rtol=1e-4, atol=1e-3)  # same work, or no comparison

    def bare_once() -> float:
        t = time.perf_counter()
        bare_numpy_pass(books, trades)
        return time.perf_counter() - t

    # interleave baseline and engine runs so that load on the shared machine hits both alike
    batches = [b for b in BATCHES if not (quick and b == 1)]
    best = dict.fromkeys(["bare", *batches], float("inf"))
    for r in range(repeats):
        best["bare"] = min(best["bare"], bare_once())
        for batch in batches:
            if batch > 1 or r == 0:
                best[batch] = min(best[batch], _stream(books, trades, batch))
    base = n / best["bare"]
    out = []
    for batch in batches:
        rate = n / best[batch]
        name = "features_throughput" if batch == MAIN_BATCH else f"features_throughput_b{batch}"
        out.append(
            Result(
                name=name,
                metric=f"books/s b={batch}",
                value=rate,
                unit="rec/s",
                baseline_name="bare_numpy_pass",
                baseline_value=base,
                goal=">= 0.5" if batch == MAIN_BATCH else "",
            )
        )
    return out
