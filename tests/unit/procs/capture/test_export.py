"""``bitrader capture export`` of every stream, CSV floats, Parquet, default path; bad files."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from procs.capture_cli import main, parse_time
from procs.tickstore.store import CaptureReader
from tests.helpers.capture_files import write_demo_capture

STREAMS = ["md.book", "md.trade", "feat", "sig", "orders"]


@pytest.fixture
def demo(tmp_path, ns):
    return write_demo_capture(tmp_path, ns, n_books=60)


@pytest.mark.parametrize("stream", STREAMS)
def test_export_every_stream_to_csv_without_traceback(demo, tmp_path, stream, capsys):
    out = tmp_path / f"{stream}.csv"

    rc = main(["export", str(demo.path), stream, "--out", str(out)])

    err = capsys.readouterr().err
    with CaptureReader(demo.path) as r:
        n = r.count(stream)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rc == 0, err
    assert "Traceback" not in err
    assert len(rows) == n > 0
    assert rows[0]["seq"] != ""


def test_export_orders_csv_text_and_shortest_round_trip_floats(demo, tmp_path):
    out = tmp_path / "o.csv"

    assert main(["export", str(demo.path), "orders", "--out", str(out)]) == 0

    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["client_id"] == "c1"
    assert rows[0]["symbol"] == "BTCUSDT"
    assert rows[0]["price"] == "3000.64"  # not %.17g's 3000.6399999999999
    assert rows[2]["ts_recv_ns"] == str(int(rows[2]["ts_ns"]))  # a position row: never 0
    assert rows[3]["symbol_id"] == "1"
    assert rows[0]["qty"] == "0.01"


def test_export_book_csv_unused_levels_empty_and_floats_round_trip(demo, tmp_path):
    out = tmp_path / "b.csv"
    with CaptureReader(demo.path) as r:
        books = r.read("md.book")

    assert main(["export", str(demo.path), "md.book", "--out", str(out)]) == 0

    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for i in (0, 7, 59):
        for lvl in range(int(books["n_bids"][i])):
            assert float(rows[i][f"bid_px_{lvl}"]) == books["bid_px"][i, lvl]
            assert rows[i][f"bid_px_{lvl}"] == repr(float(books["bid_px"][i, lvl]))
    assert rows[0]["symbol"] == "BTCUSDT"


def test_export_feat_float32_is_shortest_float32_text(demo, tmp_path):
    out = tmp_path / "s.csv"

    assert main(["export", str(demo.path), "sig", "--out", str(out)]) == 0

    with open(out, newline="") as fh:
        row = next(csv.DictReader(fh))
    assert row["score"] == "0.25"
    assert row["challenger"] == ""  # NaN: an empty cell


def test_export_parquet_by_symbol_and_time_range(demo, tmp_path):
    with CaptureReader(demo.path) as r:
        trades = r.read("md.trade")
    t = trades["ts_recv_ns"]
    start, end = int(t[10]), int(t[40])
    out = tmp_path / "t.parquet"

    rc = main(
        ["export", str(demo.path.parent), "md.trade", "--format", "parquet",
         "--start", str(start), "--end", str(end), "--symbol", "BTCUSDT", "--out", str(out)]
    )  # fmt: skip

    table = pq.read_table(out)
    want = trades[(t >= start) & (t < end) & (trades["symbol_id"] == 0)]
    assert rc == 0
    assert table.num_rows == want.size > 0
    assert table.column("seq").to_pylist() == want["seq"].tolist()
    assert table.column("px").to_pylist() == want["px"].tolist()
    assert set(table.column("symbol").to_pylist()) == {"BTCUSDT"}
    assert table.schema.metadata[b"stream"] == b"md.trade"


def test_export_default_output_goes_to_the_current_directory(demo, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    assert main(["export", str(demo.path), "md.trade"]) == 0

    assert [p.name for p in work.iterdir()] == [demo.path.stem + ".md.trade.csv"]
    assert not list(demo.path.parent.glob("*.csv"))


def test_parse_time_iso_and_ns():
    assert parse_time("2026-01-01T00:00:00Z") == 1_767_225_600_000_000_000
    assert parse_time("2026-01-01T00:00:00.5") == 1_767_225_600_500_000_000  # naive: UTC
    assert parse_time("1767225600000000001") == 1_767_225_600_000_000_001


def test_truncated_capture_ls_and_info_fail_fast_with_78(demo, tmp_path):
    good = demo.path
    bad = good.parent / "capture-20990101T000000.000000000Z.h5"
    bad.write_bytes(good.read_bytes()[:100])  # the cut that made SWMR opens retry for minutes
    cut = good.parent / "capture-20990102T000000.000000000Z.h5"
    cut.write_bytes(good.read_bytes()[:5000])  # the cut that read zeros as records
    cli = [sys.executable, "-m", "procs.cli", "capture"]

    # a hang fails through subprocess's timeout (it hung 10 minutes before the superblock check)
    ls = subprocess.run([*cli, "ls", str(good.parent)], capture_output=True, text=True, timeout=60)
    info = subprocess.run([*cli, "info", str(cut)], capture_output=True, text=True, timeout=60)

    assert ls.returncode == 78
    assert good.name in ls.stdout  # the good file is still listed
    assert "truncated" in ls.stdout
    assert "2 unreadable" in ls.stderr
    assert info.returncode == 78
    assert "truncated (5000 bytes" in info.stderr
    assert "Traceback" not in ls.stderr + info.stderr


def test_killed_capture_with_corrupt_metadata_fails_fast_with_78(demo, tmp_path):
    from procs.tickstore.store import CaptureWriter
    from shm.records import TRADE_V1

    live = CaptureWriter(tmp_path / "live", streams={"t": TRADE_V1}, flush_s=0.01)
    live.append("t", np.zeros(1000, TRADE_V1))
    live.flush()
    raw = bytearray(live.path.read_bytes())  # as a killed writer leaves it: "open for write"
    live.close()
    raw[96 : 96 + 8192] = np.random.default_rng(1).bytes(8192)  # object headers, not data
    bad = tmp_path / "bad.h5"
    bad.write_bytes(bytes(raw))
    cli = [sys.executable, "-m", "procs.cli", "capture", "info", str(bad)]

    # HDF5's default SWMR retries (100, backing off exponentially) hung here for hours
    info = subprocess.run(cli, capture_output=True, text=True, timeout=60)

    assert info.returncode == 78
    assert str(bad) in info.stderr
    assert "checksum" in info.stderr
    assert "Traceback" not in info.stderr


def test_export_of_an_empty_range_keeps_the_header(demo, tmp_path):
    out = tmp_path / "none.csv"

    rc = main(["export", str(demo.path), "md.trade", "--end", "1", "--out", str(out)])

    assert rc == 0
    header = out.read_text().splitlines()
    assert header[0].startswith("seq,ts_event_ns,ts_recv_ns,ts_pub_ns,symbol_id,symbol,side")
    assert len(header) == 1
