"""Stateless per-book features (spread, imbalance, microprice), vectorised over a BOOK_V1 batch.

Convention for degenerate books: a side is present when its level count is positive and its best
price is a positive finite number. Spread and microprice need both sides and are 0 otherwise;
an imbalance whose depth holds no quantity is 0. Levels at or beyond ``n_bids``/``n_asks`` are
ignored whatever they contain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from shm.records import BOOK_DEPTH, Records

F64 = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]

IMBALANCE_DEPTHS: Final = (1, 5, 15)
BPS: Final = 1e4
_LEVELS: Final = np.arange(BOOK_DEPTH)


@dataclass(frozen=True, slots=True)
class BookFeatures:
    """Per-book values for one batch; every array has one entry per book."""

    ok: BoolArr  # both sides present
    mid: F64  # (best bid + best ask) / 2 where ok, else NaN
    spread_bps: F64
    imbalance: tuple[F64, ...]  # one array per IMBALANCE_DEPTHS entry, in [-1, 1]
    microprice_dev_bps: F64


def _safe_ratio(num: F64, den: F64, ok: BoolArr) -> F64:
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=ok)
    return out


def book_features(books: Records) -> BookFeatures:
    """Compute the stateless features of every book in ``books`` (BOOK_V1)."""
    n_b = books["n_bids"].astype(np.int64)[:, None]
    n_a = books["n_asks"].astype(np.int64)[:, None]
    bq: F64 = np.where(n_b > _LEVELS, books["bid_qty"], 0.0)
    aq: F64 = np.where(n_a > _LEVELS, books["ask_qty"], 0.0)
    bq = np.where(np.isfinite(bq) & (bq > 0.0), bq, 0.0)
    aq = np.where(np.isfinite(aq) & (aq > 0.0), aq, 0.0)
    bid0: F64 = books["bid_px"][:, 0]
    ask0: F64 = books["ask_px"][:, 0]
    has_b = (n_b[:, 0] > 0) & np.isfinite(bid0) & (bid0 > 0.0)
    has_a = (n_a[:, 0] > 0) & np.isfinite(ask0) & (ask0 > 0.0)
    ok = has_b & has_a
    mid_raw = np.where(ok, 0.5 * (bid0 + ask0), np.nan)
    spread = _safe_ratio((ask0 - bid0) * BPS, mid_raw, ok)
    cb = np.cumsum(bq, axis=1)
    ca = np.cumsum(aq, axis=1)
    imbalance = []
    for depth in IMBALANCE_DEPTHS:
        b_sum, a_sum = cb[:, depth - 1], ca[:, depth - 1]
        tot = b_sum + a_sum
        imbalance.append(_safe_ratio(b_sum - a_sum, tot, tot > 0.0))
    q0 = bq[:, 0] + aq[:, 0]
    micro_ok = ok & (q0 > 0.0)
    micro = _safe_ratio(bid0 * aq[:, 0] + ask0 * bq[:, 0], q0, micro_ok)
    dev = _safe_ratio((micro - mid_raw) * BPS, mid_raw, micro_ok)
    return BookFeatures(ok, mid_raw, spread, tuple(imbalance), dev)
