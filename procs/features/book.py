"""Stateless per-book features (spread, imbalance, microprice), vectorised over a BOOK_V1 batch.

Convention for degenerate books: a side is present when its level count is positive and its best
price is a positive finite number. Spread and microprice need both sides and are 0 otherwise;
an imbalance whose depth holds no quantity is 0. Levels at or beyond ``n_bids``/``n_asks`` are
ignored whatever they contain.

Layout: the batch is read once into a level-major block ``[16, side, n]`` (row 0 the best price,
rows 1..15 the quantities of levels 0..14), so that every step is a whole-row numpy call and the
depth sums are row reductions that add level by level, in the same order as a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from shm.records import BOOK_DEPTH, BOOK_V1, Records

F64 = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]

IMBALANCE_DEPTHS: Final = (1, 5, 15)
BPS: Final = 1e4
_INF: Final = float("inf")

_FIELDS: Final = BOOK_V1.fields
assert _FIELDS is not None
assert BOOK_V1.itemsize % 8 == 0
assert IMBALANCE_DEPTHS == (1, 5, 15)
assert BOOK_DEPTH == 15
assert _FIELDS["n_bids"][0] == np.dtype("<i2")
assert _FIELDS["n_asks"][1] == _FIELDS["n_bids"][1] + 2
_OFFSET: Final = {name: int(spec[1]) for name, spec in _FIELDS.items()}


def _word(field: str, level: int = 0) -> int:
    offset = _OFFSET[field] + 8 * level
    assert offset % 8 == 0
    return offset // 8


# BOOK_V1 seen as 8-byte words (read: the level arrays only), the two level counts, and the two
# counts as one int32 (equal to _FULL exactly when both sides count BOOK_DEPTH levels)
BOOK_VIEW: Final = np.dtype(
    {
        "names": ["words", "counts", "both_counts"],
        "formats": [("<f8", (BOOK_V1.itemsize // 8,)), ("<i2", (2,)), "<i4"],
        "offsets": [0, _OFFSET["n_bids"], _OFFSET["n_bids"]],
        "itemsize": BOOK_V1.itemsize,
    }
)
_FULL: Final = int(np.array([BOOK_DEPTH, BOOK_DEPTH], dtype="<i2").view("<i4")[0])
# rows of the level-major block: 0 scratch (never valid), 1 best price, 2 + l quantity of level l
_ROWS: Final = np.array(
    [
        0 if r == 0 else _word(f"{side}_px") if r == 1 else _word(f"{side}_qty", r - 2)
        for r in range(2 + BOOK_DEPTH)
        for side in ("bid", "ask")
    ]
)
# the level rows (1..) are valid only below the side's count (the best price needs one above 0)
_LEVEL: Final = np.array([0, *range(BOOK_DEPTH)], dtype=np.int16)[:, None, None]


def positive_finite(a: F64) -> BoolArr:
    """``0 < a < inf`` elementwise (False for NaN)."""
    mask: BoolArr = (a > 0.0) & (a < _INF)
    return mask


@dataclass(frozen=True, slots=True)
class BookFeatures:
    """Per-book values for one batch; every array has one row per book."""

    ok: BoolArr  # both sides present
    mid: F64  # (best bid + best ask) / 2 where ok, else NaN
    spread_bps: F64
    imbalance: F64  # [n, len(IMBALANCE_DEPTHS)], in [-1, 1]
    microprice_dev_bps: F64


def book_rows_into(books: Records, x: F64) -> tuple[BoolArr | None, F64]:
    """Write spread, imbalances and microprice of ``books`` into rows 0..4 of ``x`` [>=5, n].

    ``x`` must hold zeros in those rows. Returns (ok, raw mid): ok is None when every book is
    complete (all levels counted and positive, the usual case, which skips every mask); the raw
    mid is meaningful only where ok (elsewhere it is a finite placeholder).
    """
    n = books.size
    view = books.view(BOOK_VIEW)
    q = view["words"].T[_ROWS].reshape(2 + BOOK_DEPTH, 2, n)  # level-major copy; row 0 scratch
    levels = q[1:]
    valid = positive_finite(levels)
    full = (
        np.count_nonzero(valid) == valid.size
        and np.count_nonzero(view["both_counts"] == _FULL) == n
    )
    if not full:
        valid &= np.ascontiguousarray(view["counts"].T) > _LEVEL
        levels[~valid] = 0.0
    # depth sums level by level: depth 5 lands in row 6, depth 15 (from it) in row 10
    np.add.reduce(q[2:7], axis=0, out=q[6])
    np.add.reduce(q[6:17], axis=0, out=q[10])
    px, top = q[1], q[2]  # best price and its quantity per side, 0 where the side is missing
    np.multiply(px, top[::-1], out=q[0])  # bid0 * ask qty, ask0 * bid qty
    sums = q[:2, 0] + q[:2, 1]  # [(cross, bid0 + ask0), n]
    depth = q[2:11:4]  # [depth 1/5/15, side, n]
    tot = depth[:, 0] + depth[:, 1]
    bid0, ask0 = px[0], px[1]
    mid = 0.5 * sums[1]
    if full:  # every side present with positive quantity: no division needs a mask
        np.divide(depth[:, 0] - depth[:, 1], tot, out=x[1:4])
        np.divide((ask0 - bid0) * BPS, mid, out=x[0])
        np.divide(sums[0] / tot[0] - mid, mid, out=x[4])
        x[4] *= BPS
        return None, mid
    np.divide(depth[:, 0] - depth[:, 1], tot, out=x[1:4], where=tot > 0.0)
    ok = valid[0, 0] & valid[0, 1]
    np.divide((ask0 - bid0) * BPS, mid, out=x[0], where=ok)
    q0 = tot[0]
    micro_ok = ok & (q0 > 0.0)
    micro = sums[0] / np.where(micro_ok, q0, 1.0) - mid
    np.divide(micro, mid, out=x[4], where=micro_ok)
    x[4] *= BPS
    return ok, mid


def book_features(books: Records) -> BookFeatures:
    """Compute the stateless features of every book in ``books`` (BOOK_V1)."""
    x = np.zeros((5, books.size))
    ok, mid = book_rows_into(books, x)
    if ok is None:
        return BookFeatures(np.ones(books.size, dtype=np.bool_), mid, x[0], x[1:4].T, x[4])
    return BookFeatures(ok, np.where(ok, mid, np.nan), x[0], x[1:4].T, x[4])
