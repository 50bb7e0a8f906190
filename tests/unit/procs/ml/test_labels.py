from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from procs.ml.labels import future_return_bps, sign_label

S = 1_000_000_000


def naive(
    ts: np.ndarray, mid: np.ndarray, sym: np.ndarray, h: int
) -> tuple[np.ndarray, np.ndarray]:
    out, ok = [], []
    for i in range(len(ts)):
        same = [j for j in range(len(ts)) if sym[j] == sym[i]]
        last_t = max(ts[j] for j in same)
        later = [j for j in same if ts[j] <= ts[i] + h]
        m1 = mid[later[-1]]
        good = ts[i] + h <= last_t and mid[i] > 0 and m1 > 0
        out.append(math.log(m1 / mid[i]) * 1e4 if good else 0.0)
        ok.append(good)
    return np.array(out), np.array(ok)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5_000), st.floats(90, 110), st.integers(0, 1)),
        min_size=1,
        max_size=40,
    )
)
def test_future_return_matches_naive_per_symbol(rows):
    ts = np.cumsum([r[0] for r in rows]).astype(np.int64) * 1_000_000
    mid = np.array([r[1] for r in rows])
    sym = np.array([r[2] for r in rows], dtype=np.int32)

    ret, valid = future_return_bps(ts, mid, sym, S)
    want, want_ok = naive(ts, mid, sym, S)

    np.testing.assert_array_equal(valid, want_ok)
    np.testing.assert_allclose(ret, want, rtol=1e-9, atol=1e-9)


def test_future_return_leaves_capture_end_and_zero_mids_unlabelled():
    ts = np.array([0, 1, 2, 3], dtype=np.int64) * S
    mid = np.array([100.0, 0.0, 101.0, 102.0])

    ret, valid = future_return_bps(ts, mid, np.zeros(4, dtype=np.int32), S)

    np.testing.assert_array_equal(valid, [False, False, True, False])
    assert ret[2] == pytest.approx(math.log(102 / 101) * 1e4)


def test_sign_label_applies_dead_band():
    got = sign_label(np.array([-2.0, -0.5, 0.0, 0.49, 0.51, 3.0]), 0.5)

    np.testing.assert_array_equal(got, [-1, 0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="deadband"):
        sign_label(np.zeros(1), -1.0)
