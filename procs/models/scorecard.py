"""Pure scorecard of the published signals: challenger sign agreement and each model's hit rate.

Signals are staged as SIG_V1 records (one copy per batch on the hot path) and scored in bulk,
vectorised, when the stage fills or a reader asks. Champion rows count only when the model
scored them (no FLAG_FALLBACK); challenger rows only when finite; FLAG_STALE rows make no
prediction for the hit rate.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from procs.models.health import sign_agreement
from procs.models.hits import HitTracker
from shm.records import FLAG_FALLBACK, FLAG_STALE, SIG_V1, Records

__all__ = ["Scorecard"]

STAGE_RECORDS: Final = 4096
CHAMPION_COL: Final = 0
CHALLENGER_COL: Final = 1


class Scorecard:
    """Stages SIG_V1 batches and scores them in bulk when read. One thread."""

    def __init__(self, hit_horizon_ns: int, *, stage_records: int = STAGE_RECORDS) -> None:
        self._stage: Records = np.zeros(stage_records, SIG_V1)
        self._raw = np.dtype((np.void, SIG_V1.itemsize))
        self._stage_raw = self._stage.view(self._raw)  # staging is a memcpy, not field by field
        self._n = 0
        self._hits = HitTracker(hit_horizon_ns, 2) if hit_horizon_ns > 0 else None
        self.agree = 0
        self.compared = 0

    @property
    def raw_dtype(self) -> np.dtype[np.void]:
        """SIG_V1 rows as opaque bytes: ``add_raw`` takes a view of the signals in it."""
        return self._raw

    def add(self, records: Records) -> None:
        """Stage one batch of published signals (copied)."""
        self.add_raw(records.view(self._raw))

    def add_raw(self, raw: npt.NDArray[np.void]) -> None:
        """``add`` for the signals viewed as ``raw_dtype`` (a view made once by the caller:
        ``add``'s view of a structured array, numpy's check of it mostly, was 3.8 % of a
        one-book colocated pass loop under py-spy, more than the copy)."""
        n = len(raw)
        if self._n + n > len(self._stage):
            self.process()
            if n > len(self._stage):
                self._score(raw.view(SIG_V1))
                return
        self._stage_raw[self._n : self._n + n] = raw
        self._n += n

    def process(self) -> None:
        """Score everything staged."""
        if self._n:
            self._score(self._stage[: self._n])
            self._n = 0

    def _score(self, s: Records) -> None:
        champ_ok = (s["flags"] & FLAG_FALLBACK) == 0
        chal = s["challenger"]
        chal_ok = np.isfinite(chal)
        both = champ_ok & chal_ok
        if both.any():
            agree, compared = sign_agreement(s["score"][both], chal[both])
            self.agree += agree
            self.compared += compared
        if self._hits is not None:
            live = (s["flags"] & FLAG_STALE) == 0
            signs = np.zeros((len(s), 2), np.int8)
            signs[:, CHAMPION_COL] = np.where(champ_ok & live, np.sign(s["score"]), 0)
            signs[:, CHALLENGER_COL] = np.where(chal_ok & live, np.sign(np.nan_to_num(chal)), 0)
            self._hits.update(s["symbol_id"], s["ts_recv_ns"], s["mid"], signs)

    def reset(self, column: int) -> None:
        """A model was swapped: score what it published, then restart its counts and agreement."""
        self.process()
        self.agree = self.compared = 0
        if self._hits is not None:
            self._hits.reset(column)

    def agreement_ratio(self) -> float:
        """Share of rows where champion and challenger signs agree (NaN before any)."""
        self.process()
        return self.agree / self.compared if self.compared else math.nan

    def hit_rate(self, column: int) -> float:
        """Hit rate of the model in ``column`` (NaN before any, or when tracking is off)."""
        self.process()
        return math.nan if self._hits is None else self._hits.rate(column)

    def pending(self) -> tuple[int, int]:
        """Return (predictions waiting for their horizon, predictions dropped for room)."""
        self.process()
        if self._hits is None:
            return 0, 0
        return self._hits.pending(), self._hits.dropped_total

    def counted(self, column: int) -> int:
        """Rows of ``column`` whose horizon has passed and that were counted."""
        self.process()
        return 0 if self._hits is None else int(self._hits.counted[column])
