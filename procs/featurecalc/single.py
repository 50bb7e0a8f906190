"""The engine's one-book path: Python floats instead of ~60 numpy calls on one-row arrays.

Every function performs the same floating-point operations, in the same order, as the array path
in ``procs.featurecalc.engine`` (logs still go through numpy), and is tested to give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import accumulate
from operator import itemgetter
from typing import TYPE_CHECKING, Final

import numpy as np

from procs.featurecalc.book import _PX0, _QTY0, _SIDE, BPS, IMBALANCE_DEPTHS
from procs.featurecalc.layout import (
    _COUNT,
    _IMB,
    _INF,
    _MICRO,
    _OFFSETS,
    _OK,
    _RET_COLS,
    _RV_COLS,
    _RV_FROM,
    _SPREAD,
    _TFI_COL_OF,
    _VWAP_COL_OF,
    COUNT_WINDOW_NS,
)
from shm.records import BOOK_DEPTH, BOOK_V1

if TYPE_CHECKING:
    from procs.featurecalc.engine import _SymbolState

_LOOKBACKS: Final = _OFFSETS[1:]
_LOOKBACK_NS: Final = tuple(_LOOKBACKS.tolist())
# the cumulative quantities at the imbalance depths of a side with every level (BOOK_DEPTH)
_AT_DEPTHS: Final = itemgetter(*(d - 1 for d in IMBALANCE_DEPTHS))
assert len(IMBALANCE_DEPTHS) > 1  # itemgetter of one index returns no tuple
assert max(IMBALANCE_DEPTHS) <= BOOK_DEPTH
_B: Final = BOOK_V1.fields
assert _B is not None
# one BOOK_V1 record as a tuple in one call: (seq, ts_event_ns, ts_recv_ns), symbol_id, flags,
# (n_bids, n_asks), and the record as float64 words (read: the level arrays only)
ONE_BOOK_VIEW: Final = np.dtype(
    {
        "names": ["stamps", "symbol_id", "flags", "counts", "words"],
        "formats": [("<i8", (3,)), "<i4", "<u4", ("<i2", (2,)), ("<f8", (BOOK_V1.itemsize // 8,))],
        "offsets": [0, _B["symbol_id"][1], _B["flags"][1], _B["n_bids"][1], 0],
        "itemsize": BOOK_V1.itemsize,
    }
)
assert [_B[k][1] for k in ("seq", "ts_event_ns", "ts_recv_ns")] == [0, 8, 16]


def _append_trade_one(st: _SymbolState, ts_recv: int, px: float, qty: float, side: int) -> None:
    # the same float operations, in the same order, as append_trades
    ts = st.trades
    if ts.end + 1 > ts.keys.size:
        ts.reserve(1)
    e = ts.end
    key = max(int(ts.keys[e - 1]), ts_recv)
    good = 0.0 < px < _INF and 0.0 < qty < _INF
    q = qty if good else 0.0
    sign = (side > 0) - (side < 0)
    c_pq, c_q, c_sq = ts.vals[e - 1].tolist()
    ts.vals[e] = (c_pq + (px if good else 0.0) * q, c_q + q, c_sq + sign * q)
    ts.keys[e] = key
    ts.end = e + 1


def _side_sums(qty: list[float], n: int) -> tuple[float, Sequence[float]]:
    # (valid quantity at level 0, cumulative valid quantity at each imbalance depth); levels past
    # the count add nothing, and accumulate adds left to right like the array path's reductions
    if n >= len(qty) and min(qty) > 0.0 and math.isfinite(sum(qty)):  # sum: NaN, inf show
        # a complete side: every level counts as it is
        return qty[0], _AT_DEPTHS(list(accumulate(qty)))
    valid = [q if 0.0 < q < _INF else 0.0 for q in qty[: max(n, 0)]]
    if not valid:
        return 0.0, [0.0] * len(IMBALANCE_DEPTHS)
    acc = list(accumulate(valid))
    return valid[0], [acc[min(d, len(acc)) - 1] for d in IMBALANCE_DEPTHS]


def _book_one(
    st: _SymbolState, ts_recv: int, counts: list[int], words: list[float], x: list[float]
) -> tuple[float, bool]:
    """Features of one book into ``x`` (float64 list); return (mid, ok). Equal to the array path.

    ``counts`` and ``words`` are the record's fields of ``ONE_BOOK_VIEW`` as lists.
    """
    n_b, n_a = counts
    bid_q = words[_QTY0 : _QTY0 + BOOK_DEPTH]
    ask_q = words[_QTY0 + _SIDE : _QTY0 + _SIDE + BOOK_DEPTH]
    bq0, b_sums = _side_sums(bid_q, n_b)
    aq0, a_sums = _side_sums(ask_q, n_a)
    for col, b, a in zip(_IMB, b_sums, a_sums, strict=True):
        tot = b + a
        x[col] = (b - a) / tot if tot > 0.0 else 0.0
    bid0, ask0 = words[_PX0], words[_PX0 + _SIDE]
    ok = n_b > 0 and 0.0 < bid0 < _INF and n_a > 0 and 0.0 < ask0 < _INF
    x[_OK] = 1.0 if ok else 0.0
    mid_raw = 0.5 * (bid0 + ask0) if ok else 0.0
    if ok:
        x[_SPREAD] = (ask0 - bid0) * BPS / mid_raw
        q0 = bq0 + aq0
        if q0 > 0.0:
            x[_MICRO] = ((bid0 * aq0 + ask0 * bq0) / q0 - mid_raw) / mid_raw * BPS
    # history: the same operations as books_into; logs go through numpy like the array path
    bs = st.books
    if bs.end + 1 > bs.keys.size:
        bs.reserve(1)
    e = bs.end
    key = max(int(bs.keys[e - 1]), ts_recv)
    vals = bs.vals  # rows: carried mid, prefix sum of r**2
    last_mid, last_c = vals[:, e - 1].tolist()
    mid = mid_raw if ok else last_mid
    has_mid = mid > 0.0
    # the book itself is never a lookback row (every horizon is positive): search before it
    back = (bs.keys[bs.start + 1 : e].searchsorted(key - _LOOKBACKS, "right") + bs.start).tolist()
    m0s, c0s = vals[:, back].tolist()
    ratios = [mid / last_mid if has_mid and last_mid > 0.0 else 1.0]
    ratios += [mid / m0 if has_mid and m0 > 0.0 else 1.0 for m0 in m0s]
    logs = np.log(np.array(ratios)).tolist()
    r = logs[0] if has_mid and last_mid > 0.0 else 0.0
    c = last_c + r * r
    vals[:, e] = mid, c
    bs.keys[e] = key
    bs.end = e + 1
    for col, m0, lg in zip(_RET_COLS, m0s, logs[1:], strict=True):
        x[col] = lg * BPS if has_mid and m0 > 0.0 else 0.0
    for col, c0 in zip(_RV_COLS, c0s[_RV_FROM:], strict=True):
        x[col] = math.sqrt(max(c - c0, 0.0)) * BPS
    bs.start = back[-1]
    _trade_windows_one(st, key, mid, x)
    return mid, ok


_LOG1P: dict[int, float] = {}  # trade count -> log1p(count), each computed once, as below
_LOG1P_MAX: Final = 4096  # counts remembered (a count past them is computed every time)


def _log1p_count(k: int) -> float:
    # numpy's log1p on a one-element array, like the array path (a numpy call costs ~1.5 µs,
    # a dict hit ~0.05): the same value, from the same call, the first time a count occurs
    v = _LOG1P.get(k)
    if v is None:
        v = float(np.log1p(np.array([float(k)]))[0])
        if len(_LOG1P) < _LOG1P_MAX:
            _LOG1P[k] = v
    return v


def _trade_windows_one(st: _SymbolState, key: int, mid: float, x: list[float]) -> None:
    ts = st.trades
    at = ts.keys[ts.start + 1 : ts.end].searchsorted(key - _OFFSETS, "right") + ts.start
    rows = ts.vals[at].tolist()
    idx = at.tolist()
    hi, rhi = idx[0], rows[0]
    for w, j, rlo in zip(_LOOKBACK_NS, idx[1:], rows[1:], strict=True):
        d_pq, q, d_sq = rhi[0] - rlo[0], rhi[1] - rlo[1], rhi[2] - rlo[2]
        traded = q > 0.0
        if w in _VWAP_COL_OF:
            vwap = d_pq / q if traded else 0.0
            x[_VWAP_COL_OF[w]] = (vwap - mid) * BPS / mid if traded and mid > 0.0 else 0.0
        if w in _TFI_COL_OF:
            x[_TFI_COL_OF[w]] = d_sq / q if traded else 0.0
        if w == COUNT_WINDOW_NS:
            x[_COUNT] = _log1p_count(hi - j)
    ts.start = idx[-1]
