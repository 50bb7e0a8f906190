"""HitTracker against the trainer's label (procs.ml.labels) on the whole series at once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from procs.ml.labels import future_return_bps
from procs.models.hits import HitTracker


def _series(seed: int, n: int = 400) -> Any:
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, 3, n).astype(np.int32)
    ts = np.cumsum(rng.integers(0, 3_000_000, n)).astype(np.int64)
    ts[rng.random(n) < 0.05] -= 2_000_000  # a few out-of-order stamps
    mid = np.round(100 + np.cumsum(rng.normal(0, 0.02, n)), 2)
    mid[rng.random(n) < 0.02] = 0.0  # degenerate books
    signs = rng.integers(-1, 2, (n, 2)).astype(np.int8)
    return sym, ts, mid, signs


def _reference(sym: Any, ts: Any, mid: Any, signs: Any, horizon_ns: int) -> Any:
    ret, valid = future_return_bps(ts, mid, sym, horizon_ns)
    move = np.sign(ret).astype(np.int8)
    counted = (signs != 0) & (valid & (move != 0) & (mid > 0))[:, None]
    hits = counted & (signs == move[:, None])
    return hits.sum(axis=0).tolist(), counted.sum(axis=0).tolist()


@pytest.mark.parametrize("seed", range(6))
def test_update_streamed_in_random_batches_equals_trainer_label(seed):
    sym, ts, mid, signs = _series(seed)
    horizon_ns = 20_000_000
    tracker = HitTracker(horizon_ns, 2)
    cuts = np.sort(np.random.default_rng(100 + seed).choice(np.arange(1, len(ts)), 40, False))

    for a, b in zip([0, *cuts], [*cuts, len(ts)], strict=True):
        tracker.update(sym[a:b], ts[a:b], mid[a:b], signs[a:b])

    hits, counted = _reference(sym, ts, mid, signs, horizon_ns)
    assert tracker.counted.tolist() == counted
    assert tracker.hits.tolist() == hits
    assert counted[0] > 50


def test_update_single_rows_equal_one_batch():
    sym, ts, mid, signs = _series(9, 200)
    one, rows = HitTracker(10_000_000, 2), HitTracker(10_000_000, 2)

    one.update(sym, ts, mid, signs)
    for i in range(len(ts)):
        rows.update(sym[i : i + 1], ts[i : i + 1], mid[i : i + 1], signs[i : i + 1])

    assert rows.hits.tolist() == one.hits.tolist()
    assert rows.counted.tolist() == one.counted.tolist()


def test_rate_nan_until_resolved_then_ratio():
    t = HitTracker(10, 1)
    assert np.isnan(t.rate(0))

    t.update(
        np.zeros(3, np.int32),
        np.array([0, 5, 10]),
        np.array([1.0, 2.0, 3.0]),
        np.ones((3, 1), np.int8),
    )

    assert t.rate(0) == 1.0
    assert t.pending() == 2


def test_pending_over_capacity_drops_oldest_and_counts():
    t = HitTracker(10**12, 1, pending_max=8)
    sym = np.zeros(5, np.int32)

    for k in range(3):
        t.update(sym, np.arange(5) + 5 * k, np.ones(5), np.ones((5, 1), np.int8))

    assert t.pending() == 8
    assert t.dropped_total == 7


def test_reset_one_model_keeps_the_other():
    t = HitTracker(1, 2)
    t.update(
        np.zeros(2, np.int32), np.array([0, 1]), np.array([1.0, 2.0]), np.ones((2, 2), np.int8)
    )

    t.reset(1)

    assert t.counted.tolist() == [1, 0]
