"""Types of the feature engine's C arithmetic (procs/featurecalc/_featc.c)."""

from __future__ import annotations

from typing import Any

import numpy as np

LAYOUT: dict[str, Any]  # the record offsets, feature columns and windows compiled in

def symbol_counts(
    records: np.ndarray, itemsize: int, offset: int, /
) -> list[tuple[int, int]] | None: ...
def append_trades(
    trades: np.ndarray, symbol: int, keys: np.ndarray, vals: np.ndarray, end: int, /
) -> int: ...
def books(
    books: np.ndarray,
    symbol: int,
    keys: np.ndarray,
    vals: np.ndarray,
    start: int,
    end: int,
    t_keys: np.ndarray,
    t_vals: np.ndarray,
    t_start: int,
    t_end: int,
    out: np.ndarray,
    ts_feat_ns: int,
    mark_stale: bool,
    /,
) -> tuple[int, int, int]: ...
