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
# the positive finite float64s are exactly the bit patterns 1 .. 0x7FEF_FFFF_FFFF_FFFF
_POS_FINITE_MAX_BITS: Final = 0x7FEF_FFFF_FFFF_FFFF

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


# BOOK_V1 seen as 8-byte words (fields read through it: the level arrays only) and counts
BOOK_VIEW: Final = np.dtype(
    {
        "names": ["words", "counts"],
        "formats": [("<f8", (BOOK_V1.itemsize // 8,)), ("<i2", (2,))],
        "offsets": [0, _OFFSET["n_bids"]],
        "itemsize": BOOK_V1.itemsize,
    }
)
# row r of the level-major block: r = 0 best price, r = 1 + l quantity of level l; per side
_ROWS: Final = np.array(
    [
        _word(f"{side}_px") if r == 0 else _word(f"{side}_qty", r - 1)
        for r in range(1 + BOOK_DEPTH)
        for side in ("bid", "ask")
    ]
)
# a row is valid only below the side's level count (the best price needs a count above 0)
_ROW_LEVEL: Final = np.array([0, *range(BOOK_DEPTH)], dtype=np.int16)[:, None, None]


def positive_finite(a: F64) -> BoolArr:
    """``0 < a < inf`` elementwise (False for NaN) in two numpy calls instead of three."""
    mask: BoolArr = a.view(np.uint64) - 1 < _POS_FINITE_MAX_BITS  # 0 wraps to the top
    return mask


@dataclass(frozen=True, slots=True)
class BookFeatures:
    """Per-book values for one batch; every array has one row per book."""

    ok: BoolArr  # both sides present
    mid: F64  # (best bid + best ask) / 2 where ok, else NaN
    spread_bps: F64
    imbalance: F64  # [n, len(IMBALANCE_DEPTHS)], in [-1, 1]
    microprice_dev_bps: F64


def book_rows_into(books: Records, x: F64) -> tuple[BoolArr, F64]:
    """Write spread, imbalances and microprice of ``books`` into rows 0..4 of ``x`` [>=5, n].

    ``x`` must hold zeros in those rows. Returns (ok, raw mid); the raw mid is meaningful only
    where ok (elsewhere it is a finite placeholder).
    """
    n = books.size
    view = books.view(BOOK_VIEW)
    raw = view["words"].T[_ROWS].reshape(1 + BOOK_DEPTH, 2, n)  # level-major copy
    counts = np.ascontiguousarray(view["counts"].T)  # [side, n]
    valid = positive_finite(raw) & (counts > _ROW_LEVEL)
    q = np.where(valid, raw, 0.0)
    # depth sums level by level: depth 5 lands in row 5, depth 15 (from it) in row 9
    np.add.reduce(q[1:6], axis=0, out=q[5])
    np.add.reduce(q[5:16], axis=0, out=q[9])
    depth = q[1:10:4]  # [depth 1/5/15, side, n]
    tot = depth[:, 0] + depth[:, 1]
    np.divide(depth[:, 0] - depth[:, 1], tot, out=x[1:4], where=tot > 0.0)
    has = valid[0]
    ok = has[0] & has[1]
    px = q[0]  # best prices, 0 for a missing side
    bid0, ask0 = px[0], px[1]
    mid = 0.5 * (bid0 + ask0)
    np.divide((ask0 - bid0) * BPS, mid, out=x[0], where=ok)
    top = q[1]  # quantity at level 0 per side, 0 where invalid
    q0 = top[0] + top[1]
    micro_ok = ok & (q0 > 0.0)
    cross = px * top[::-1]  # bid0 * ask qty, ask0 * bid qty
    micro = (cross[0] + cross[1]) / np.where(micro_ok, q0, 1.0) - mid
    np.divide(micro, mid, out=x[4], where=micro_ok)
    x[4] *= BPS
    return ok, mid


def book_features(books: Records) -> BookFeatures:
    """Compute the stateless features of every book in ``books`` (BOOK_V1)."""
    x = np.zeros((5, books.size))
    ok, mid = book_rows_into(books, x)
    return BookFeatures(ok, np.where(ok, mid, np.nan), x[0], x[1:4].T, x[4])
