"""Scorecard: which rows count for agreement and hit rate, and staging across batches."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from procs.models.scorecard import Scorecard
from shm.records import FLAG_FALLBACK, FLAG_STALE, SIG_V1


def _sig(scores: Any, challengers: Any, flags: Any = None, mids: Any = None) -> np.ndarray:
    n = len(scores)
    s = np.zeros(n, SIG_V1)
    s["score"] = scores
    s["challenger"] = challengers
    s["flags"] = 0 if flags is None else flags
    s["ts_recv_ns"] = np.arange(n) * 10
    s["mid"] = np.arange(n) + 100.0 if mids is None else mids
    s["symbol_id"] = 1
    return s


def test_agreement_skips_fallback_and_nan_rows():
    card = Scorecard(0)
    s = _sig(
        [0.5, 0.5, -0.3, 0.2, 0.9, -0.1],
        [0.1, -0.1, -0.2, np.nan, -0.4, -0.5],
        [0, 0, 0, 0, FLAG_FALLBACK, 0],
    )

    card.add(s[:2])
    card.add(s[2:])

    assert (card.agree, card.compared) == (0, 0)  # staged, not yet scored
    assert card.agreement_ratio() == pytest.approx(3 / 4)


def test_hit_rate_ignores_fallback_and_stale_predictions():
    card = Scorecard(10)
    # mid rises every row; champion always says up, challenger always down
    flags = [0, FLAG_FALLBACK, FLAG_STALE, 0, 0, 0]
    s = _sig([0.5] * 6, [-0.5] * 6, flags)

    card.add(s)

    assert card.hit_rate(0) == 1.0
    assert card.hit_rate(1) == 0.0
    assert [card.counted(0), card.counted(1)] == [3, 4]  # rows 0..4 resolved


def test_add_more_than_stage_scores_everything():
    card = Scorecard(0, stage_records=4)
    s = _sig([0.1] * 10, [0.2] * 10)

    for a in range(0, 10, 3):
        card.add(s[a : a + 3])
    card.add(_sig([0.1] * 9, [-0.2] * 9))

    assert card.agreement_ratio() == pytest.approx(10 / 19)


def test_reset_scores_staged_rows_then_restarts():
    card = Scorecard(0)
    card.add(_sig([0.1], [0.2]))

    card.reset(1)

    assert math.isnan(card.agreement_ratio())


def test_add_raw_of_a_view_made_once_scores_as_add():
    s = _sig([0.5, -0.5, 0.2, 0.3, -0.1], [0.1, 0.4, np.nan, 0.2, -0.3], mids=[1, 2, 3, 2, 1])
    by_add, by_raw = Scorecard(10, stage_records=3), Scorecard(10, stage_records=3)
    raw = s.view(by_raw.raw_dtype)  # the inference stage's buffer, viewed once

    for a in range(5):
        by_add.add(s[a : a + 1])
        by_raw.add_raw(raw[a : a + 1])
    by_add.add(s)  # past the stage: scored at once
    by_raw.add_raw(raw)

    assert by_raw.agreement_ratio() == by_add.agreement_ratio()
    assert by_raw.compared == by_add.compared == 8
    assert [by_raw.hit_rate(0), by_raw.hit_rate(1)] == [by_add.hit_rate(0), by_add.hit_rate(1)]
    assert [by_raw.counted(0), by_raw.counted(1)] == [by_add.counted(0), by_add.counted(1)]
    assert by_raw.counted(0) > 0
