from __future__ import annotations

from pathlib import Path

import pytest

from procs.ml.synth import synthetic_market
from procs.tickstore import STREAM_BOOK, STREAM_TRADE
from procs.tickstore.store import CaptureWriter
from shm.records import BOOK_V1, TRADE_V1


def write_synth_captures(directory: Path, seed: int, n_books: int, n_files: int) -> list[Path]:
    books, trades = synthetic_market(seed=seed, n_books=n_books, n_symbols=2)
    per = books.size // n_files
    paths: list[Path] = []
    for i in range(n_files):
        b = books[i * per : (i + 1) * per if i < n_files - 1 else None]
        lo, hi = int(b["ts_recv_ns"][0]), int(b["ts_recv_ns"][-1])
        t = trades[(trades["ts_recv_ns"] >= lo) & (trades["ts_recv_ns"] <= hi)]
        with CaptureWriter(
            directory,
            streams={STREAM_BOOK: BOOK_V1, STREAM_TRADE: TRADE_V1},
            attrs={"symbols": ["AAA", "BBB"]},
            clock_ns=lambda lo=lo: lo,  # type: ignore[misc]  # default-arg capture of the loop value
        ) as w:
            w.append(STREAM_BOOK, b)
            w.append(STREAM_TRADE, t)
        paths += w.paths
    return paths


@pytest.fixture(scope="module")
def synth_captures(tmp_path_factory):
    d = tmp_path_factory.mktemp("caps")
    return write_synth_captures(d, seed=11, n_books=24_000, n_files=3)
