"""Parity matching: a live record with no backtest twin is named, with where its book is."""

from __future__ import annotations

import numpy as np

from procs.backtest.compare import FEAT_FIELDS, compare_records
from shm.records import BOOK_V1, FEAT_V1, Records


def _recs(dtype: np.dtype, seqs: list[int]) -> Records:
    r: Records = np.zeros(len(seqs), dtype)
    r["seq"] = seqs
    r["ts_event_ns"] = [10 * s for s in seqs]
    r["ts_recv_ns"] = [10 * s + 1 for s in seqs]
    return r


def test_unmatched_live_records_are_counted_and_named_with_their_books_place() -> None:
    live = _recs(FEAT_V1, [0, 1, 2, 3])
    ours = _recs(FEAT_V1, [0, 1])
    ours["x"][1, 0] = 1.0  # seq 1 differs in one feature
    books = _recs(BOOK_V1, [0, 1, 2])  # seq 3's book was not captured
    got = compare_records(live, ours, FEAT_FIELDS, books)
    assert (got["compared"], got["identical"], got["differing"]) == (2, 1, 1)
    assert got["live_unmatched"] == 2
    assert got["unmatched"] == [
        "seq 2 symbol 0 ts_recv_ns 21: its book is in the capture",
        "seq 3 symbol 0 ts_recv_ns 31: its book is not in the capture",
    ]
