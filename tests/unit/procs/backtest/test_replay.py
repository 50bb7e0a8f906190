"""Capture loading for the backtest: order, filters and the inputs it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from procs.backtest.replay import ReplayError, capture_files, load_market
from procs.ml.simcapture import sim_records, write_sim_capture
from procs.tickstore import STREAM_BOOK, STREAM_TRADE
from procs.tickstore.store import CaptureWriter
from shm.records import BOOK_V1, TRADE_V1


def _write(directory: Path, books, trades, prefix: str = "t") -> Path:
    with CaptureWriter(
        directory,
        streams={STREAM_BOOK: books.dtype, STREAM_TRADE: TRADE_V1},
        attrs={"venue": "test"},
        prefix=prefix,
        clock_ns=lambda: 1,
    ) as w:
        w.append(STREAM_BOOK, books)
        w.append(STREAM_TRADE, trades)
        return w.path


def test_loads_in_receive_order_and_filters_symbols_and_time(tmp_path):
    write_sim_capture(tmp_path, 3, 5.0)
    m = load_market([tmp_path])
    assert m.books.size > 100
    assert m.trades.size > 10
    assert (np.diff(m.books["ts_recv_ns"]) >= 0).all()
    only = load_market([tmp_path], symbol_ids=[1])
    assert set(only.books["symbol_id"].tolist()) == {1}
    mid = int(m.books["ts_recv_ns"][m.books.size // 2])
    late = load_market([tmp_path], from_ns=mid)
    assert late.books.size < m.books.size
    assert (late.books["ts_recv_ns"] >= mid).all()


def test_a_sequence_gap_is_refused_with_where_it_is(tmp_path):
    books, trades = sim_records(3, 2.0)
    books = np.delete(books, 10)  # a lapped capture lost one record
    _write(tmp_path, books, trades)
    with pytest.raises(ReplayError, match=r"sequence gap after seq 9 \(next 11\)"):
        load_market([tmp_path])


def test_another_record_layout_is_refused(tmp_path):
    books, trades = sim_records(3, 1.0)
    other = np.dtype([(n, BOOK_V1.fields[n][0]) for n in BOOK_V1.names if n != "flags"])  # type: ignore[union-attr, index]
    old = np.zeros(books.size, dtype=other)
    for n in other.names or ():
        old[n] = books[n]
    _write(tmp_path, old, trades)
    with pytest.raises(ReplayError, match="another schema"):
        load_market([tmp_path])


def test_missing_paths_and_non_captures_are_refused(tmp_path):
    with pytest.raises(ReplayError, match="no such file"):
        capture_files([tmp_path / "nope"])
    with pytest.raises(ReplayError, match="no capture files"):
        capture_files([tmp_path])
    bad = tmp_path / "x.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ReplayError, match="not an HDF5 file"):
        load_market([bad])
