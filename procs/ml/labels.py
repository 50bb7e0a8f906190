"""Pure labels: the future mid move over a horizon, as a return in bps or a dead-banded sign.

Times are the feature engine's clock (``ts_recv_ns``). The future mid of a record at t is the mid
of the last record of the same symbol at or before t + horizon; a record is labelled only when
the data reaches past t + horizon (so the end of a capture never gets a made-up label).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


def future_return_bps(
    ts_ns: I64, mid: F64, symbol_id: npt.NDArray[np.int32], horizon_ns: int
) -> tuple[F64, Mask]:
    """Return (log return in bps from each record to t + horizon, valid mask), per symbol."""
    if horizon_ns <= 0:
        raise ValueError(f"horizon_ns must be positive, was {horizon_ns}")
    ret = np.zeros(ts_ns.size)
    valid = np.zeros(ts_ns.size, dtype=bool)
    for s in np.unique(symbol_id):
        rows = np.flatnonzero(symbol_id == s)
        t = np.maximum.accumulate(ts_ns[rows])  # the engine's non-decreasing clock
        m = mid[rows]
        j = np.searchsorted(t, t + horizon_ns, "right") - 1
        ok = (t + horizon_ns <= t[-1]) & (m > 0.0) & (m[j] > 0.0)
        r = np.zeros(rows.size)
        np.log(m[j] / np.where(ok, m, 1.0), out=r, where=ok)
        ret[rows] = r * 1e4
        valid[rows] = ok
    return ret, valid


def sign_label(ret_bps: F64, deadband_bps: float) -> npt.NDArray[np.int8]:
    """Return +1 above ``deadband_bps``, -1 below ``-deadband_bps``, 0 in between."""
    if deadband_bps < 0:
        raise ValueError(f"deadband_bps must be >= 0, was {deadband_bps}")
    out: npt.NDArray[np.int8] = np.where(
        ret_bps > deadband_bps, 1, np.where(ret_bps < -deadband_bps, -1, 0)
    ).astype(np.int8)
    return out
