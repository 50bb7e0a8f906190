"""FEAT_V1 batches for inference tests: stamps and mids that tests can check end to end."""

from __future__ import annotations

import numpy as np

from procs.featurecalc.engine import N_FEATURES
from shm.records import FEAT_V1

T0_NS = 1_700_000_000_000_000_000


def make_feats(
    start: int, n: int, *, symbol_id: int = 7, seed: int = 0, step_ns: int = 1_000_000
) -> np.ndarray:
    """``n`` records with seq ``start..start+n-1``; stamps derived from seq; x random, book ok."""
    rng = np.random.default_rng(seed + start)
    out = np.zeros(n, FEAT_V1)
    seq = np.arange(start, start + n, dtype=np.int64)
    out["seq"] = seq
    out["ts_event_ns"] = T0_NS + seq * step_ns
    out["ts_recv_ns"] = T0_NS + seq * step_ns + 1000
    out["ts_feat_ns"] = T0_NS + seq * step_ns + 2000
    out["symbol_id"] = symbol_id
    out["mid"] = 100.0 + seq * 0.01
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    x[:, N_FEATURES - 1] = 1.0  # book_ok
    out["x"][:, :N_FEATURES] = x
    return out
