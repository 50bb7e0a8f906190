"""BENCH_V1 batches whose payload mirrors ``seq``, so a torn or misplaced record shows up."""

from __future__ import annotations

import numpy as np

from shm.records import BENCH_V1, Records


def make_batch(first: int, n: int) -> Records:
    """Return ``n`` records with seq ``first..first+n-1``; every other field derives from seq."""
    out: Records = np.zeros(n, BENCH_V1)
    fill_batch(out, first)
    return out


def fill_batch(out: Records, first: int) -> None:
    """Overwrite ``out`` in place with seqs from ``first`` (no allocation: producer loops)."""
    seq = np.arange(first, first + len(out), dtype=np.int64)
    out["seq"] = seq
    out["ts_event_ns"] = seq * 3
    out["ts_recv_ns"] = -seq
    out["payload"] = seq[:, None].astype(np.float64)


def torn_count(batch: Records) -> int:
    """Return how many records do not mirror their own seq in every field."""
    seq = batch["seq"]
    ok = (
        (batch["ts_event_ns"] == seq * 3)
        & (batch["ts_recv_ns"] == -seq)
        & np.all(batch["payload"] == seq[:, None].astype(np.float64), axis=1)
    )
    return int(np.count_nonzero(~ok))
