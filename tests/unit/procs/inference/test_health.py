"""check_output: the fallback decision on one batch of model output."""

from __future__ import annotations

import numpy as np
import pytest

from procs.models.health import check_output, sign_agreement


@pytest.mark.parametrize(
    ("values", "elapsed", "want"),
    [
        ([0.5], 10, None),
        ([1.0, -1.0, 0.0], 10, None),
        ([np.nan], 10, "nonfinite"),
        ([0.1, np.inf], 10, "nonfinite"),
        ([0.1, -np.inf, 0.2], 10, "nonfinite"),
        ([0.1, np.nan, 3.0], 10, "nonfinite"),
        ([1.01], 10, "out_of_range"),
        ([0.0, -1.5], 10, "out_of_range"),
        ([0.5], 101, "latency"),
        ([0.5, 0.1], 101, "latency"),
        ([np.nan], 101, "nonfinite"),
        ([1.0 + 1e-7], 10, None),
    ],
)
def test_check_output_classifies_batch(values, elapsed, want):
    assert check_output(np.array(values, np.float32), elapsed, 100) == want


def test_sign_agreement_skips_nan_rows():
    a = np.array([0.5, -0.2, 0.1, 0.3], np.float32)
    b = np.array([0.1, 0.4, np.nan, 0.9], np.float32)

    assert sign_agreement(a, b) == (2, 3)
