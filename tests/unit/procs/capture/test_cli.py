from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from procs.capture_cli import main
from procs.ml.synth import synthetic_market
from procs.tickstore.store import CaptureWriter
from shm.records import BOOK_V1, TRADE_V1


@pytest.fixture
def capture_file(tmp_path):
    books, trades = synthetic_market(seed=4, n_books=40)
    with CaptureWriter(
        tmp_path, streams={"md.book": BOOK_V1, "md.trade": TRADE_V1}, attrs={"venue": "simex"}
    ) as w:
        w.append("md.book", books)
        w.append("md.trade", trades)
    return w.path, books, trades


def test_capture_ls_lists_files_with_counts(capture_file, capsys):
    path, books, trades = capture_file

    rc = main(["ls", str(path.parent)])

    out = capsys.readouterr().out
    assert rc == 0
    assert path.name in out
    assert f"md.book={books.size}" in out
    assert f"md.trade={trades.size}" in out


def test_capture_info_json_reports_counts_and_stamps(capture_file, capsys):
    path, books, _ = capture_file

    rc = main(["info", str(path), "--json"])

    info = json.loads(capsys.readouterr().out)
    book = info["streams"]["md.book"]
    assert rc == 0
    assert info["closed_cleanly"] is True
    assert info["attrs"]["venue"] == "simex"
    assert book["dtype_name"] == "BOOK_V1"
    assert book["records"] == books.size
    assert book["first_ts_recv_ns"] == int(books["ts_recv_ns"][0])
    assert book["last_seq"] == int(books["seq"][-1])


def test_capture_info_text_mentions_every_stream(capture_file, capsys):
    path, _, _ = capture_file

    rc = main(["info", str(path)])

    out = capsys.readouterr().out
    assert rc == 0
    assert "stream md.book: BOOK_V1" in out
    assert "stream md.trade: TRADE_V1" in out


def test_capture_export_npy_keeps_exact_records(capture_file, tmp_path):
    path, books, _ = capture_file
    target = tmp_path / "b.npy"

    rc = main(["export", str(path), "md.book", "--format", "npy", "--out", str(target)])

    got = np.load(target)
    assert rc == 0
    assert got.dtype == BOOK_V1
    assert got.tobytes() == books.tobytes()


def test_capture_export_csv_flattens_levels(capture_file, tmp_path):
    path, _, trades = capture_file
    target = tmp_path / "t.csv"

    rc = main(["export", str(path), "md.trade", "--format", "csv", "--out", str(target)])

    with open(target, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rc == 0
    assert len(rows) == trades.size
    assert float(rows[3]["px"]) == trades["px"][3]
    assert int(rows[3]["ts_recv_ns"]) == trades["ts_recv_ns"][3]
    main(["export", str(path), "md.book", "--out", str(tmp_path / "b.csv")])
    with open(tmp_path / "b.csv") as fh:
        assert "bid_px_14" in fh.readline()


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["info", "/nonexistent/x.h5"], 78),
        (["export", "/nonexistent/x.h5", "md.book"], 78),
        (["ls", "/nonexistent-dir"], 78),
        (["export", "/nonexistent/x.h5", "md.book", "--start", "yesterday"], 78),
        (["bogus"], 2),
    ],
)
def test_capture_cli_bad_input_exits_with_message(argv, code, capsys):
    rc = main(argv)

    err = capsys.readouterr().err
    assert rc == code
    assert err
    assert "Traceback" not in err


def test_capture_cli_corrupt_file_and_unknown_stream_exit_78(capture_file, tmp_path, capsys):
    path, _, _ = capture_file
    bad = tmp_path / "bad.h5"
    bad.write_bytes(path.read_bytes()[:2000])

    rcs = [main(["info", str(bad)]), main(["export", str(path), "nope"])]

    err = capsys.readouterr().err
    assert rcs == [78, 78]
    assert "truncated" in err
    assert "nope" in err
