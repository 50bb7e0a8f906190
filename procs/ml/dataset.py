"""Training sets from capture files: features by the live engine, labels from the future mid.

Each capture file is read through ``procs.tickstore.store`` and run through the same
``procs.featurecalc.compute_batch`` the features process streams; files are processed in parallel
with a ``multiprocess`` Pool. The engine starts cold in each file, so the first ``HORIZONS_NS``
of every symbol in a file (warm-up) and every stale or degenerate book are left out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from procs.featurecalc.engine import FEATURES, HORIZONS_NS, N_FEATURES, compute_batch
from procs.ml.labels import future_return_bps, sign_label
from procs.tickstore import STREAM_BOOK, STREAM_TRADE, concat_records
from procs.tickstore.store import CaptureReader
from shm.records import BOOK_V1, FEAT_V1, FLAG_STALE, TRADE_V1, Records


@dataclass(frozen=True)
class Dataset:
    """Rows in time order within each file, files in the order given."""

    x: npt.NDArray[np.float32]  # [N, N_FEATURES], columns = FEATURES
    ret_bps: npt.NDArray[np.float64]  # future return over the horizon
    y: npt.NDArray[np.int8]  # dead-banded sign of ret_bps
    ts_ns: npt.NDArray[np.int64]  # ts_recv_ns of the book that made the row
    symbol_id: npt.NDArray[np.int32]
    feature_names: tuple[str, ...] = FEATURES

    def __len__(self) -> int:
        return int(self.y.size)

    def sha256(self) -> str:
        """Hash of exactly what the model is fitted and validated on."""
        h = hashlib.sha256()
        h.update(",".join(self.feature_names).encode())
        for a in (self.x, self.ret_bps, self.y, self.ts_ns, self.symbol_id):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


def capture_features(path: str) -> Records:
    """Return the FEAT_V1 records of one capture file (books and trades of all its symbols)."""
    with CaptureReader(path) as r:
        books = r.read(STREAM_BOOK) if STREAM_BOOK in r.streams else np.zeros(0, BOOK_V1)
        trades = r.read(STREAM_TRADE) if STREAM_TRADE in r.streams else np.zeros(0, TRADE_V1)
        symbols = r.attrs.get("symbols")
    n_symbols = len(symbols) if isinstance(symbols, list) and symbols else None
    if n_symbols is not None and books.size:
        n_symbols = max(n_symbols, int(books["symbol_id"].max()) + 1)
    return compute_batch(books, trades, n_symbols=n_symbols)


def _label(feat: Records, horizon_ns: int, deadband_bps: float) -> Dataset:
    ts = feat["ts_recv_ns"]
    sym = feat["symbol_id"]
    ret, valid = future_return_bps(ts, feat["mid"], sym, horizon_ns)
    keep = valid & ((feat["flags"] & FLAG_STALE) == 0)
    for s in np.unique(sym):
        rows = sym == s
        keep &= ~rows | (ts >= ts[rows].min() + HORIZONS_NS)  # engine warm-up
    return Dataset(
        x=np.ascontiguousarray(feat["x"][keep, :N_FEATURES]),
        ret_bps=ret[keep],
        y=sign_label(ret[keep], deadband_bps),
        ts_ns=ts[keep].astype(np.int64),
        symbol_id=sym[keep].astype(np.int32),
    )


def concat_datasets(parts: Sequence[Dataset]) -> Dataset:
    return Dataset(
        x=np.concatenate([p.x for p in parts]).reshape(-1, N_FEATURES).astype(np.float32),
        ret_bps=np.concatenate([p.ret_bps for p in parts]).astype(np.float64),
        y=np.concatenate([p.y for p in parts]).astype(np.int8),
        ts_ns=np.concatenate([p.ts_ns for p in parts]).astype(np.int64),
        symbol_id=np.concatenate([p.symbol_id for p in parts]).astype(np.int32),
    )


def build_dataset(
    paths: Sequence[str | Path],
    *,
    horizon_s: float,
    deadband_bps: float,
    processes: int = 1,
) -> Dataset:
    """Features (in parallel over files) and labels for every capture file in ``paths``."""
    names = [str(p) for p in paths]
    if not names:
        raise ValueError("no capture files given")
    if processes > 1 and len(names) > 1:
        from multiprocess import Pool  # offline only; dill pickles what plain pickle cannot

        with Pool(min(processes, len(names))) as pool:
            feats: list[Records] = pool.map(capture_features, names)
    else:
        feats = [capture_features(n) for n in names]
    horizon_ns = int(horizon_s * 1e9)
    return concat_datasets([_label(f, horizon_ns, deadband_bps) for f in feats])


def features_of(paths: Sequence[str | Path]) -> Records:
    """All FEAT_V1 records of ``paths`` in order (for backtests and inspection)."""
    return concat_records([capture_features(str(p)) for p in paths], FEAT_V1)
