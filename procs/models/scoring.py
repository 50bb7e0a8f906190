"""Pure scoring: the rule-based fallback scorer, the numpy reference of the linear model, checks.

Everything here takes feature rows laid out as ``procs.featurecalc.FEATURES`` (a FEAT_V1 ``x``
array, float32 [N, 32] or [N, n_features]) and returns float32 scores in [-1, 1]: positive means
the mid is expected to rise. No I/O; inference, the backtester and the trainer share it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from procs.featurecalc.engine import FEATURES, N_FEATURES, feature_index

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

# fallback: a clipped blend of the three quantities with the most direct short-term meaning
FALLBACK_WEIGHTS: Final[Mapping[str, float]] = {
    "imbalance_5": 0.45,
    "trade_flow_imbalance_10s": 0.35,
    "microprice_dev_bps": 0.20,  # passed through tanh(dev / MICROPRICE_SCALE_BPS) first
}
MICROPRICE_SCALE_BPS: Final = 1.0
_I_IMB: Final = feature_index("imbalance_5")
_I_TFI: Final = feature_index("trade_flow_imbalance_10s")
_I_MICRO: Final = feature_index("microprice_dev_bps")
_I_OK: Final = feature_index("book_ok")


def fallback_score(x: F32) -> F32:
    """Score rows of features without a model; 0 where the book is degenerate (``book_ok=0``)."""
    rows = np.asarray(x, dtype=np.float32).reshape(-1, x.shape[-1])
    s = (
        FALLBACK_WEIGHTS["imbalance_5"] * rows[:, _I_IMB]
        + FALLBACK_WEIGHTS["trade_flow_imbalance_10s"] * rows[:, _I_TFI]
        + FALLBACK_WEIGHTS["microprice_dev_bps"]
        * np.tanh(rows[:, _I_MICRO] / np.float32(MICROPRICE_SCALE_BPS))
    )
    s = np.where(rows[:, _I_OK] > 0.5, s, 0.0)
    s = np.where(np.isfinite(s), s, 0.0)
    out: F32 = np.clip(s, -1.0, 1.0).astype(np.float32)
    return out


@dataclass(frozen=True, slots=True)
class ScoreCheck:
    """Health of a batch of model scores."""

    n: int
    n_nonfinite: int
    n_out_of_range: int

    @property
    def ok(self) -> bool:
        return self.n > 0 and self.n_nonfinite == 0 and self.n_out_of_range == 0


def check_scores(scores: npt.ArrayLike, *, tol: float = 1e-6) -> ScoreCheck:
    """Count non-finite and out-of-[-1, 1] scores (``tol`` absorbs float32 rounding)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    finite = np.isfinite(s)
    return ScoreCheck(
        n=int(s.size),
        n_nonfinite=int(s.size - finite.sum()),
        n_out_of_range=int((np.abs(s[finite]) > 1.0 + tol).sum()),
    )


@dataclass(frozen=True, slots=True)
class LinearScorer:
    """Numpy reference of the exported model: standardise, multinomial logistic, P(up)-P(down).

    ``classes`` are the label values in the column order of ``coef`` (e.g. -1, 0, 1).
    """

    feature_names: tuple[str, ...]
    mean: F64
    scale: F64
    coef: F64  # [n_classes, n_features]
    intercept: F64  # [n_classes]
    classes: tuple[int, ...]

    def __post_init__(self) -> None:
        n = len(self.feature_names)
        if self.mean.shape != (n,) or self.scale.shape != (n,) or self.coef.shape[1] != n:
            raise ValueError(f"parameter shapes do not match {n} features")
        if 1 not in self.classes or -1 not in self.classes:
            raise ValueError(f"classes must include -1 and 1, were {self.classes}")

    def probabilities(self, x: F32) -> F64:
        z = (np.asarray(x, dtype=np.float64)[:, : len(self.feature_names)] - self.mean) / self.scale
        logits = z @ self.coef.T + self.intercept
        if logits.shape[1] == 1:  # binary: sklearn keeps one column for the positive class
            p1 = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.stack([1.0 - p1, p1], axis=1)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        probs: F64 = e / e.sum(axis=1, keepdims=True)
        return probs

    def score(self, x: F32) -> F32:
        p = self.probabilities(x)
        up, down = self.classes.index(1), self.classes.index(-1)
        out: F32 = (p[:, up] - p[:, down]).astype(np.float32)
        return out

    def to_json(self) -> str:
        return json.dumps(
            {
                "feature_names": list(self.feature_names),
                "mean": self.mean.tolist(),
                "scale": self.scale.tolist(),
                "coef": self.coef.tolist(),
                "intercept": self.intercept.tolist(),
                "classes": list(self.classes),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> LinearScorer:
        d = json.loads(text)
        return cls(
            feature_names=tuple(d["feature_names"]),
            mean=np.asarray(d["mean"], dtype=np.float64),
            scale=np.asarray(d["scale"], dtype=np.float64),
            coef=np.asarray(d["coef"], dtype=np.float64).reshape(len(d["intercept"]), -1),
            intercept=np.asarray(d["intercept"], dtype=np.float64),
            classes=tuple(int(c) for c in d["classes"]),
        )


def check_feature_names(names: Sequence[str]) -> None:
    """Raise ValueError unless ``names`` is exactly this build's FEATURES (a model's metadata)."""
    if tuple(names) != FEATURES:
        pairs = zip(names, FEATURES, strict=False)
        first = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(names), N_FEATURES))
        raise ValueError(
            f"model features do not match the engine: model has {len(names)}, engine has "
            f"{N_FEATURES}; first difference at index {first}"
        )


def agreement(a: F32, b: F32) -> float:
    """Return the largest absolute difference between two score arrays (NaN if sizes differ)."""
    if np.shape(a) != np.shape(b):
        return math.nan
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), initial=0))
