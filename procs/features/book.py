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

from shm.records import BOOK_DEPTH, BOOK_V1, Records

F64 = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]

IMBALANCE_DEPTHS: Final = (1, 5, 15)
BPS: Final = 1e4
_LEVELS: Final = np.arange(BOOK_DEPTH)


# the four level arrays sit back to back in BOOK_V1: read them as one [n, 4, depth] block
_LEVEL_FIELDS: Final = ("bid_px", "bid_qty", "ask_px", "ask_qty")
_BOOK_FIELDS: Final = BOOK_V1.fields
assert _BOOK_FIELDS is not None
_LEVELS_AT: Final = int(_BOOK_FIELDS["bid_px"][1])
_LEVEL_BYTES: Final = 8 * BOOK_DEPTH
assert [_BOOK_FIELDS[f][1] for f in _LEVEL_FIELDS] == [
    _LEVELS_AT + i * _LEVEL_BYTES for i in range(4)
]
_COUNTS_AT: Final = int(_BOOK_FIELDS["n_bids"][1])
assert int(_BOOK_FIELDS["n_asks"][1]) == _COUNTS_AT + 2
assert _BOOK_FIELDS["n_bids"][0] == np.dtype("<i2") == _BOOK_FIELDS["n_asks"][0]
_DEPTH_AT: Final = np.array(IMBALANCE_DEPTHS) - 1


@dataclass(frozen=True, slots=True)
class BookFeatures:
    """Per-book values for one batch; every array has one row per book."""

    ok: BoolArr  # both sides present
    mid: F64  # (best bid + best ask) / 2 where ok, else NaN
    spread_bps: F64
    imbalance: F64  # [n, len(IMBALANCE_DEPTHS)], in [-1, 1]
    microprice_dev_bps: F64


def book_features(books: Records) -> BookFeatures:
    """Compute the stateless features of every book in ``books`` (BOOK_V1)."""
    raw = np.ascontiguousarray(books).view(np.uint8).reshape(books.size, BOOK_V1.itemsize)
    block = raw[:, _LEVELS_AT : _LEVELS_AT + 4 * _LEVEL_BYTES].view(np.float64)
    lv = block.reshape(books.size, 4, BOOK_DEPTH)  # [n, (bid_px, bid_qty, ask_px, ask_qty), depth]
    cnt = raw[:, _COUNTS_AT : _COUNTS_AT + 4].view(np.int16)  # [n, (n_bids, n_asks)]
    qty = lv[:, 1::2, :]
    valid = (cnt[:, :, None] > _LEVELS) & (qty > 0.0) & (qty < np.inf)
    q = np.where(valid, qty, 0.0)  # [n, side, depth]
    c = np.cumsum(q, axis=2)[:, :, _DEPTH_AT]  # [n, side, depths]
    tot = c[:, 0] + c[:, 1]
    imbalance = np.zeros_like(tot)
    np.divide(c[:, 0] - c[:, 1], tot, out=imbalance, where=tot > 0.0)
    best = lv[:, 0::2, 0]  # [n, (bid, ask)]
    has = (cnt > 0) & (best > 0.0) & (best < np.inf)
    ok = has[:, 0] & has[:, 1]
    bid0, ask0 = best[:, 0], best[:, 1]
    mid_raw = np.where(ok, 0.5 * (bid0 + ask0), np.nan)
    spread = np.zeros(books.size)
    np.divide((ask0 - bid0) * BPS, mid_raw, out=spread, where=ok)
    bq0, aq0 = q[:, 0, 0], q[:, 1, 0]
    q0 = bq0 + aq0
    micro_ok = ok & (q0 > 0.0)
    dev = np.zeros(books.size)
    np.divide(
        (bid0 * aq0 + ask0 * bq0) / np.where(micro_ok, q0, 1.0) - mid_raw,
        mid_raw,
        out=dev,
        where=micro_ok,
    )
    dev *= BPS
    return BookFeatures(ok, mid_raw, spread, imbalance, dev)
