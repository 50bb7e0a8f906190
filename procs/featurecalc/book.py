"""Stateless per-book features (spread, imbalance, microprice), vectorised over a BOOK_V1 batch.

Convention for degenerate books: a side is present when its level count is positive and its best
price is a positive finite number. Spread and microprice need both sides and are 0 otherwise;
an imbalance whose depth holds no quantity is 0. Levels at or beyond ``n_bids``/``n_asks`` are
ignored whatever they contain.

Layout: the batch is copied once into a level-major block ``[17, side, n]`` (row 1 the best
price, rows 2..16 the quantities of levels 0..14, row 0 scratch), so that every step is a
whole-row numpy call and the depth sums are row reductions that add level by level, in the same
order as a Python loop. A batch of complete books (every level counted, every price and quantity
positive and finite: the usual case) skips every mask; the unmasked divisions are the same
operations, so both paths give the same bytes.
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
assert _OFFSET["flags"] + 4 == _OFFSET["n_bids"] == 40
_FULL: Final = int(np.array([BOOK_DEPTH, BOOK_DEPTH], dtype="<i2").view("<i4")[0])
# the level-major block [row, side, n]: row 0 scratch, row 1 best price, row 2 + l quantity at
# level l. In a record the ask side's words sit _SIDE words after the bid side's
_PX0: Final = _word("bid_px")
_QTY0: Final = _word("bid_qty")
_SIDE: Final = _word("ask_px") - _PX0
assert _word("ask_qty") - _QTY0 == _SIDE == 2 * BOOK_DEPTH
assert _QTY0 == _PX0 + BOOK_DEPTH
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


class BookScratch:
    """The arrays, and the views into them, that ``book_rows_into`` reuses for ``n`` books.

    Built once per batch size: a numpy call on a prepared view costs less than making the view.
    ``x`` [>=5, n] receives spread, imbalances and microprice in rows 0..4.
    """

    __slots__ = (
        "ask0",
        "below_inf",
        "bid0",
        "cross",
        "da",
        "db",
        "levels",
        "micro",
        "mid",
        "n",
        "o5",
        "o15",
        "pairs",
        "px",
        "q",
        "r5",
        "r15",
        "spread",
        "sums",
        "sums_cross",
        "sums_px",
        "t1",
        "top_swapped",
        "tot",
        "tot0",
        "valid",
        "x",
        "x_imb",
        "x_micro",
    )

    def __init__(self, n: int, x: F64) -> None:
        self.n = n
        self.x = x
        self.spread, self.x_imb, self.x_micro = x[0], x[1:4], x[4]
        q = self.q = np.empty((2 + BOOK_DEPTH, 2, n))  # rows: 0 scratch, 1 best px, 2+ qty
        self.levels = q[1:]  # best price, then the quantities: what must be positive, finite
        self.valid = np.empty((1 + BOOK_DEPTH, 2, n), dtype=np.bool_)
        self.below_inf = np.empty_like(self.valid)
        # depth sums level by level: depth 5 lands in row 6, depth 15 (from it) in row 10
        self.r5, self.o5, self.r15, self.o15 = q[2:7], q[6], q[6:17], q[10]
        self.px, self.top_swapped, self.cross = q[1], q[2][::-1], q[0]
        self.bid0, self.ask0 = q[1, 0], q[1, 1]
        self.pairs = q[:2, 0], q[:2, 1]  # (cross, best px) of the bid side, of the ask side
        self.sums = np.empty((2, n))  # cross (bid0 * ask qty + ask0 * bid qty), bid0 + ask0
        self.sums_cross, self.sums_px = self.sums
        depth = q[2:11:4]  # [depth 1/5/15, side, n]
        self.db, self.da = depth[:, 0], depth[:, 1]
        self.tot = np.empty((3, n))
        self.tot0 = self.tot[0]  # level 0 quantity, both sides
        self.mid = np.empty(n)
        self.t1 = np.empty((3, n))
        self.micro = self.t1[0]  # reused once the imbalances are done


def book_rows_into(view: Records, sc: BookScratch) -> tuple[BoolArr | None, F64]:
    """Write spread, imbalances and microprice of ``view`` into rows 0..4 of ``sc.x``.

    ``view`` is the batch of BOOK_V1 records seen through ``BOOK_VIEW``.

    Returns (ok, raw mid), both valid until the next call with ``sc``: ok is None when every
    book is complete (all levels counted and positive, the usual case, which skips every mask);
    the raw mid is meaningful only where ok (elsewhere it is a finite placeholder).
    """
    q, x, mid, tot, t1 = sc.q, sc.x, sc.mid, sc.tot, sc.t1
    words = view["words"]
    q[1] = words[:, _PX0 : _PX0 + _SIDE + 1 : _SIDE].T  # level-major copies
    qty = words[:, _QTY0 : _QTY0 + _SIDE + BOOK_DEPTH].reshape(sc.n, 3, BOOK_DEPTH)[:, ::2]
    q[2:] = qty.transpose(2, 1, 0)
    levels, valid = sc.levels, sc.valid
    np.greater(levels, 0.0, out=valid)
    np.less(levels, _INF, out=sc.below_inf)
    valid &= sc.below_inf
    full = (
        np.count_nonzero(valid) == valid.size
        and np.count_nonzero(view["both_counts"] == _FULL) == sc.n
    )
    if not full:
        valid &= np.ascontiguousarray(view["counts"].T) > _LEVEL
        levels[~valid] = 0.0
    np.add.reduce(sc.r5, axis=0, out=sc.o5)
    np.add.reduce(sc.r15, axis=0, out=sc.o15)
    np.multiply(sc.px, sc.top_swapped, out=sc.cross)
    np.add(*sc.pairs, out=sc.sums)
    np.add(sc.db, sc.da, out=tot)
    np.subtract(sc.db, sc.da, out=t1)  # imbalance numerators
    bid0, ask0, spread = sc.bid0, sc.ask0, sc.spread
    np.multiply(sc.sums_px, 0.5, out=mid)
    if full:  # every side present with positive quantity: no division needs a mask
        np.divide(t1, tot, out=sc.x_imb)
        np.subtract(ask0, bid0, out=spread)
        spread *= BPS
        np.divide(spread, mid, out=spread)
        micro = sc.micro
        np.divide(sc.sums_cross, sc.tot0, out=micro)
        micro -= mid
        np.divide(micro, mid, out=sc.x_micro)
        sc.x_micro *= BPS
        return None, mid
    x[:5] = 0.0
    np.divide(t1, tot, out=sc.x_imb, where=tot > 0.0)
    ok = valid[0, 0] & valid[0, 1]
    np.divide((ask0 - bid0) * BPS, mid, out=spread, where=ok)
    q0 = sc.tot0
    micro_ok = ok & (q0 > 0.0)
    micro_px = sc.sums_cross / np.where(micro_ok, q0, 1.0) - mid
    np.divide(micro_px, mid, out=sc.x_micro, where=micro_ok)
    sc.x_micro *= BPS
    return ok, mid


def book_features(books: Records) -> BookFeatures:
    """Compute the stateless features of every book in ``books`` (BOOK_V1)."""
    x = np.zeros((5, books.size))
    ok, mid = book_rows_into(books.view(BOOK_VIEW), BookScratch(books.size, x))
    if ok is None:
        return BookFeatures(np.ones(books.size, dtype=np.bool_), mid, x[0], x[1:4].T, x[4])
    return BookFeatures(ok, np.where(ok, mid, np.nan), x[0], x[1:4].T, x[4])
