"""Capture write rate: records/s appended through CaptureWriter vs bare low-level h5py writes.

Both write the same BOOK_V1 batches to a SWMR file with the same chunking, a 64 MiB chunk cache
and the same library-version bounds (v110); the baseline is the low-level API with a cached
memory type and nothing else (no attributes, no gaps table, no failure bookkeeping).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from procs.tickstore.store import LIBVER, RDCC_BYTES, CaptureWriter
from shm.records import BOOK_V1, TRADE_V1
from tests.bench._common import Result

CHUNK_BYTES = 1 << 20


def _bare(path: Path, batches: list[np.ndarray]) -> float:
    dtype = batches[0].dtype
    start = time.perf_counter()
    with h5py.File(path, "w", libver=LIBVER, rdcc_nbytes=RDCC_BYTES) as f:
        ds = f.create_dataset(
            "s",
            shape=(0,),
            maxshape=(None,),
            dtype=dtype,
            chunks=(CHUNK_BYTES // dtype.itemsize,),
        )
        f.swmr_mode = True
        dsid, mtype, n = ds.id, h5py.h5t.py_create(dtype), 0
        for b in batches:
            dsid.set_extent((n + b.size,))
            fs = dsid.get_space()
            fs.select_hyperslab((n,), (b.size,))
            dsid.write(h5py.h5s.create_simple((b.size,)), fs, b, mtype=mtype)
            n += b.size
    return time.perf_counter() - start


def _writer(directory: Path, batches: list[np.ndarray]) -> float:
    start = time.perf_counter()
    with CaptureWriter(directory, streams={"s": batches[0].dtype}, chunk_bytes=CHUNK_BYTES) as w:
        for b in batches:
            w.append("s", b)
    return time.perf_counter() - start


def run(quick: bool) -> list[Result]:
    out = []
    total = 100_000 if quick else 1_000_000
    for dtype, batch in ((BOOK_V1, 1000), (BOOK_V1, 64), (TRADE_V1, 1000)):
        n_batches = max(1, total // batch // (4 if batch < 1000 else 1))
        batches = [np.zeros(batch, dtype=dtype) for _ in range(8)]
        feed = [batches[i % 8] for i in range(n_batches)]
        n = n_batches * batch
        best_w = best_b = float("inf")
        for rep in range(3):
            with tempfile.TemporaryDirectory(prefix="bench-cap-") as tmp:
                best_b = min(best_b, _bare(Path(tmp) / f"b{rep}.h5", feed))
            with tempfile.TemporaryDirectory(prefix="bench-cap-") as tmp:
                best_w = min(best_w, _writer(Path(tmp), feed))
        name = (
            "capture_rate"
            if (dtype, batch) == (BOOK_V1, 1000)
            else (f"capture_rate_{'book' if dtype == BOOK_V1 else 'trade'}_b{batch}")
        )
        out.append(
            Result(
                name=name,
                metric=f"records/s b={batch}",
                value=n / best_w,
                unit="rec/s",
                baseline_name="bare_h5py_lowlevel",
                baseline_value=n / best_b,
                goal=">= 0.8" if name == "capture_rate" else "",
            )
        )
    return out
