"""Time-range queries over rotated captures, the pandas helper, and schema-1 files."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from procs.capture_cli import main
from procs.ml.synth import synthetic_market
from procs.tickstore.layout import ORDER_V2, dataset_attrs
from procs.tickstore.query import flat_columns, query, read_frame, to_frame
from procs.tickstore.store import CaptureReader, CaptureWriter, list_captures
from shm.records import BOOK_DEPTH, BOOK_V1, FLAG_STALE, TRADE_V1
from tests.helpers.capture_files import old_orders, write_demo_capture, write_schema1_capture

T0 = 1_767_225_600_000_000_000
US = 1000


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> int:
        return self.t


def trades(start: int, n: int) -> np.ndarray:
    recs = np.zeros(n, TRADE_V1)
    recs["seq"] = np.arange(start, start + n)
    recs["ts_recv_ns"] = T0 + recs["seq"] * US  # one trade per µs
    recs["symbol_id"] = recs["seq"] % 2
    recs["px"] = 100.0 + recs["seq"]
    return recs


def rotated(tmp_path: Path, files: int = 4, per_file: int = 5000) -> Path:
    clock = Clock()
    with CaptureWriter(
        tmp_path,
        streams={"md.trade": TRADE_V1},
        attrs={"symbols": ["BTCUSDT", "ETHUSDT"]},
        chunk_bytes=64 * 1024,  # 1024 trades per chunk
        rotate_s=1.0,
        clock_ns=clock,
    ) as w:
        for i in range(files):
            w.append("md.trade", trades(i * per_file, per_file))
            clock.t += 1_000_000_000
    return tmp_path


def test_query_selects_symbol_and_time_range_across_rotated_files(tmp_path):
    src = rotated(tmp_path)
    start, end = T0 + 4000 * US, T0 + 11_000 * US  # spans files 0, 1 and 2

    got = query(src, "md.trade", start_ns=start, end_ns=end, symbols=["ETHUSDT"])

    assert len(list_captures(src)) == 4
    assert got["seq"].tolist() == list(range(4001, 11_000, 2))
    assert (got["symbol_id"] == 1).all()
    everything = query(src, "md.trade")
    assert everything["seq"].tolist() == list(range(20_000))


class CountingFile(io.FileIO):
    """A real file whose reads are counted (h5py's fileobj driver reads through it)."""

    bytes_read = 0

    def readinto(self, b):  # type: ignore[no-untyped-def,override]
        n = super().readinto(b)
        self.bytes_read += n or 0
        return n


def test_range_query_binary_searches_and_reads_only_the_chunks_in_range(tmp_path):
    recs = trades(0, 200_000)  # 12.8 MB, 196 chunks of 1024 trades
    with CaptureWriter(tmp_path, streams={"md.trade": TRADE_V1}, chunk_bytes=64 * 1024) as w:
        w.append("md.trade", recs)
    size = w.path.stat().st_size

    with CountingFile(w.path, "rb") as fh, CaptureReader(w.path, fileobj=fh) as r:
        got = r.read_range("md.trade", T0 + 100_000 * US, T0 + 102_000 * US)
        stats, nbytes = r.stats, fh.bytes_read

    assert got["seq"].tolist() == list(range(100_000, 102_000))
    assert stats.rows == 2000  # only the rows in range were read as records
    assert stats.probes <= 2 * (math.ceil(math.log2(200_000)) + 1)
    # the probes touch ~2 log2(196) chunks, the range 2-3 more: a full scan would read 12.8 MB
    assert nbytes < 40 * 64 * 1024
    assert nbytes < size / 5


def test_read_range_filters_strays_of_a_wall_clock_step_back(tmp_path):
    recs = trades(0, 100)
    recs["ts_recv_ns"][50] = T0 + 10 * US  # the clock stepped back for one record
    with CaptureWriter(tmp_path, streams={"md.trade": TRADE_V1}) as w:
        w.append("md.trade", recs)

    with CaptureReader(w.path) as r:
        got = r.read_range("md.trade", T0 + 40 * US, T0 + 60 * US)

    assert 50 not in got["seq"].tolist()
    assert (got["ts_recv_ns"] >= T0 + 40 * US).all()


def test_to_frame_one_row_per_record_levels_as_columns_unused_nan(tmp_path, ns):
    writer = write_demo_capture(tmp_path, ns, n_books=50)
    with CaptureReader(writer.path) as r:
        books = r.read("md.book")
        books["n_bids"][0] = 2  # a thin book: levels 2.. are not real
        symbols = r.symbols

    df = to_frame(books, symbols)

    assert len(df) == books.size
    assert {"bid_px_0", "bid_px_14", "ask_qty_14", "symbol"} <= set(df.columns)
    assert df["bid_px_1"].iloc[0] == books["bid_px"][0, 1]
    assert df.loc[0, [f"bid_px_{i}" for i in range(2, BOOK_DEPTH)]].isna().all()
    assert df["symbol"].iloc[0] == symbols[int(books["symbol_id"][0])]
    frame = read_frame(tmp_path / "cap", "orders")
    assert frame["symbol"].tolist()[:3] == ["BTCUSDT"] * 3
    assert frame["kind"].tolist() == [1, 2, 3, 4, 5]


def test_schema1_file_stays_readable_and_queryable_beside_new_ones(tmp_path, ns):
    books, trade_recs = synthetic_market(seed=2, n_books=30)
    books["n_bids"][0] = 3
    books["bid_px"][0, 3:] = 0.0  # schema 1: unused levels were 0.0
    t0 = int(books["ts_recv_ns"][0])
    old = tmp_path / "cap" / "capture-20260101T000000.000000000Z.h5"
    old.parent.mkdir()
    write_schema1_capture(old, books, trade_recs, old_orders(t0))
    new = write_demo_capture(tmp_path, ns, n_books=20)  # a schema-2 file after it

    with CaptureReader(old) as r:
        assert r.attrs["schema_version"] == 1
        assert r.dtype_name("orders") == "ORDER_V1"  # unnamed in the file: known by its CRC
        assert r.time_field("md.trade") == "ts_recv_ns"
        assert r.time_field("orders") == "ts_capture_ns"
        assert r.gaps().size == 0
        mid = int(books["ts_recv_ns"][10])
        assert r.read_range("md.book", mid)["seq"].tolist() == books["seq"][10:].tolist()
    orders = query(tmp_path / "cap", "orders")
    cols = dict(zip(*flat_columns(books[:1]), strict=True))
    rc = main(["export", str(old), "orders", "--out", str(tmp_path / "o.csv")])

    assert orders.dtype == ORDER_V2  # the old rows converted field by field
    assert orders["symbol_id"].tolist() == [-1, -1, -1, 0, 0, 0, 1, -1]
    assert orders["seq"].tolist() == [1, 2, 3, 1, 2, 3, 4, 5]
    assert math.isnan(cols["bid_px_3"][0])  # n_bids says level 3 is not real: NaN, not 0.0
    assert rc == 0
    assert len((tmp_path / "o.csv").read_text().splitlines()) == 4
    assert new.paths[0].parent == old.parent


def test_every_dataset_describes_its_fields_codes_and_flags(tmp_path, ns):
    writer = write_demo_capture(tmp_path, ns, n_books=10)

    with CaptureReader(writer.path) as r:
        attrs = {s: r.dataset_attrs(s) for s in [*r.streams, "gaps"]}
        dtypes = {s: r.dtype(s) for s in r.streams}

    for stream, a in attrs.items():
        assert a["dtype_name"], stream
        assert a["description"], stream
        for field in (dtypes.get(stream) or np.dtype([("x", "i1")])).names or ():
            if stream != "gaps":
                assert a[f"{field}.doc"], (stream, field)
                assert f"{field}.units" in a, (stream, field)
    book = attrs["md.book"]
    assert book["bid_px.units"].startswith("quote currency")
    assert book["bid_qty.units"].startswith("base currency")
    assert book["ts_event_ns.units"] == "ns since the Unix epoch (UTC)"
    assert book["flags.bits"][str(FLAG_STALE)].startswith("STALE")
    assert book["time_field"] == "ts_recv_ns"
    assert attrs["orders"]["kind.codes"] == {
        "1": "order state change",
        "2": "fill",
        "3": "position after a change",
        "4": "pre-trade risk refusal",
        "5": "circuit-breaker transition",
    }
    assert attrs["md.trade"]["side.codes"] == {"1": "taker buy", "-1": "taker sell"}
    assert attrs["orders"]["dtype_name"] == "ORDER_V2"
    assert dataset_attrs("md.book", BOOK_V1)["dtype_name"] == "BOOK_V1"


def test_to_frame_without_pandas_says_how_to_get_it(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pandas(name, *a, **k):  # type: ignore[no-untyped-def]
        if name == "pandas":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(Exception, match=r"bitrader\[analysis\]"):
        to_frame(np.zeros(1, TRADE_V1))
    assert pd is not None
