"""Pure checks on a batch of model output: decide whether the batch falls back, and why.

A batch falls back when any score is NaN or infinite, any score is outside [-1, 1], or the model
call took longer than the latency budget. No I/O, no clocks: the caller passes the elapsed time.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "REASONS",
    "REASON_LATENCY",
    "REASON_LOAD",
    "REASON_NONFINITE",
    "REASON_NO_MODEL",
    "REASON_OUT_OF_RANGE",
    "check_output",
    "sign_agreement",
]

REASON_NONFINITE: Final = "nonfinite"
REASON_OUT_OF_RANGE: Final = "out_of_range"
REASON_LATENCY: Final = "latency"
REASON_NO_MODEL: Final = "no_model"  # no model loaded (start-up without one)
REASON_LOAD: Final = "load"  # reload refusals use this label on their own counter
REASONS: Final = (REASON_NONFINITE, REASON_OUT_OF_RANGE, REASON_LATENCY, REASON_NO_MODEL)
TOLERANCE: Final = 1e-6  # float32 rounding of P(up) - P(down) may overshoot 1 by an ulp
_LO: Final = -1.0 - TOLERANCE
_HI: Final = 1.0 + TOLERANCE


def check_output(scores: npt.NDArray[np.float32], elapsed_ns: int, budget_ns: int) -> str | None:
    """Return None when the batch is usable, else the reason it must fall back.

    Values are checked before latency: a batch that is both late and NaN is counted as NaN.
    """
    if scores.shape[0] == 1:
        v = float(scores[0])
        ok = _LO <= v <= _HI  # False for NaN and for +-inf
    else:
        # min/max propagate NaN, so one pair of reductions covers all three value checks
        ok = float(scores.min()) >= _LO and float(scores.max()) <= _HI
    if not ok:
        return REASON_NONFINITE if not np.isfinite(scores).all() else REASON_OUT_OF_RANGE
    if elapsed_ns > budget_ns:
        return REASON_LATENCY
    return None


def sign_agreement(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> tuple[int, int]:
    """Return (rows where both signs agree, rows compared); rows with a NaN are not compared."""
    both = np.isfinite(a) & np.isfinite(b)
    agree = np.sign(a[both]) == np.sign(b[both])
    return int(agree.sum()), int(both.sum())
