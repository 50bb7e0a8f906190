"""Hypothesis strategies for BOOK_V1/TRADE_V1 batches, including degenerate books."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from shm.records import BOOK_DEPTH, BOOK_V1, TRADE_V1

MS = 1_000_000
TICK = 0.5


@st.composite
def books_and_trades(draw, max_books=25, max_trades=30):
    n_sym = draw(st.integers(1, 2))
    nb = draw(st.integers(1, max_books))
    nt = draw(st.integers(0, max_trades))
    deltas = st.integers(-200, 15_000)  # ms; a few go backwards (running max key)
    books = np.zeros(nb, dtype=BOOK_V1)
    books["seq"] = np.arange(nb)
    books["ts_recv_ns"] = (
        10_000 * MS + np.cumsum(draw(st.lists(deltas, min_size=nb, max_size=nb))) * MS
    )
    books["ts_event_ns"] = books["ts_recv_ns"] - 3 * MS
    books["symbol_id"] = draw(st.lists(st.integers(0, n_sym - 1), min_size=nb, max_size=nb))
    books["flags"] = draw(st.lists(st.sampled_from([0, 1, 2, 8]), min_size=nb, max_size=nb))
    qty = st.sampled_from([0.0, 0.0, 0.25, 1.0, 3.5, 10.0])
    levels = np.arange(BOOK_DEPTH)
    for i in range(nb):
        books["n_bids"][i] = draw(st.sampled_from([0, 1, 3, 5, 15, 15]))
        books["n_asks"][i] = draw(st.sampled_from([0, 1, 3, 5, 15, 15]))
        mid = draw(st.integers(180, 220)) * TICK
        half = draw(st.integers(-1, 3)) * TICK / 2
        books["bid_px"][i] = mid - half - levels * TICK
        books["ask_px"][i] = mid + half + levels * TICK
        books["bid_qty"][i] = draw(st.lists(qty, min_size=BOOK_DEPTH, max_size=BOOK_DEPTH))
        books["ask_qty"][i] = draw(st.lists(qty, min_size=BOOK_DEPTH, max_size=BOOK_DEPTH))
        # garbage beyond the valid levels must be ignored
        books["bid_qty"][i, books["n_bids"][i] :] = 1e6
        books["ask_px"][i, books["n_asks"][i] :] = -5.0
    trades = np.zeros(nt, dtype=TRADE_V1)
    trades["seq"] = np.arange(nt)
    trades["ts_recv_ns"] = (
        10_000 * MS + np.cumsum(draw(st.lists(deltas, min_size=nt, max_size=nt))) * MS
    )
    trades["symbol_id"] = draw(st.lists(st.integers(0, n_sym - 1), min_size=nt, max_size=nt))
    trades["px"] = [
        x * TICK for x in draw(st.lists(st.integers(175, 225), min_size=nt, max_size=nt))
    ]
    trades["qty"] = draw(st.lists(qty, min_size=nt, max_size=nt))
    trades["side"] = draw(st.lists(st.sampled_from([-1, 1]), min_size=nt, max_size=nt))
    return books, trades
