"""The promotion gate: does a model beat the rule-based scorer and a no-skill baseline?

Scored on the held-out period only (the last rows in time, after the training gap; nothing is
fitted or chosen on them). Two metrics, both on rows that moved beyond the dead-band:

- ``auc_up_vs_down``: ROC AUC of the score separating up moves from down moves;
- ``hit_rate``: the share of non-zero scores whose sign matched the move.

Two opponents: the rule-based scorer (``procs.models.scoring.fallback_score``, what inference runs
without a model) and a no-skill baseline, a constant score calling the training period's more
frequent direction every time (its AUC is 0.5, its hit rate that direction's share of moves).

Rows close in time share most of their label window, so the row count overstates the evidence.
The held-out period is cut into ``blocks`` contiguous time blocks; a model *beats* an opponent
on a metric when it is ahead over the whole period and the mean of its per-block lead minus
``z`` standard errors (over blocks) is still above zero. It is *promotable* when it beats both
opponents on both metrics, on at least ``min_moves`` held-out rows that moved.
Pure: numpy and scikit-learn's ``roc_auc_score``, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int8]

METRICS: Final = ("auc_up_vs_down", "hit_rate")
RULE_BASED: Final = "rule_based"
NO_SKILL: Final = "no_skill"
MIN_BLOCKS: Final = 3  # fewer usable blocks: not enough evidence, not promotable


@dataclass(frozen=True, slots=True, kw_only=True)
class GateConfig:
    blocks: int = 10
    z: float = 2.0
    min_moves: int = 1000  # fewer held-out rows beyond the dead-band: too little to judge

    def __post_init__(self) -> None:
        if self.blocks < MIN_BLOCKS:
            raise ValueError(f"gate blocks must be >= {MIN_BLOCKS}, was {self.blocks}")
        if not self.z >= 0.0:
            raise ValueError(f"gate z must be >= 0, was {self.z}")


def auc_up_vs_down(score: F32, y: I8) -> float | None:
    """ROC AUC of ``score`` for up (+1) vs down (-1) rows; None without both kinds."""
    from sklearn.metrics import roc_auc_score

    moved = y != 0
    up = y[moved] == 1
    if not 0 < int(up.sum()) < up.size:
        return None
    return float(roc_auc_score(up, np.asarray(score, np.float64)[moved]))


def hit_rate(score: F32, y: I8) -> float | None:
    """Share of moved rows with a non-zero score whose sign matched; None when none qualify."""
    s = np.asarray(score, np.float64)
    called = (y != 0) & (s != 0.0)
    if not called.any():
        return None
    return float((np.sign(s[called]) == y[called]).mean())


_FUNCS: Final = {"auc_up_vs_down": auc_up_vs_down, "hit_rate": hit_rate}


def no_skill_score(y_train: I8, n: int) -> tuple[F32, int]:
    """A constant score calling the training period's more frequent direction (+1 on a tie)."""
    direction = 1 if int((y_train == 1).sum()) >= int((y_train == -1).sum()) else -1
    return np.full(n, float(direction), dtype=np.float32), direction


def _compare(
    metric: str, model: F32, other: F32, y: I8, blocks: list[npt.NDArray[np.int64]], z: float
) -> dict[str, Any]:
    f = _FUNCS[metric]
    m_all, o_all = f(model, y), f(other, y)
    leads = []
    for rows in blocks:
        m, o = f(model[rows], y[rows]), f(other[rows], y[rows])
        if m is not None and o is not None:
            leads.append(m - o)
    lead = None if m_all is None or o_all is None else m_all - o_all
    lower = None
    if len(leads) >= MIN_BLOCKS:
        d = np.asarray(leads)
        lower = float(d.mean() - z * d.std(ddof=1) / math.sqrt(d.size))
    beats = lead is not None and lead > 0.0 and lower is not None and lower > 0.0
    return {
        "metric": metric,
        "model": m_all,
        "baseline": o_all,
        "lead": lead,
        "blocks_used": len(leads),
        "blocks_ahead": sum(x > 0.0 for x in leads),
        "block_lead_lower_bound": lower,
        "beats": beats,
    }


def evaluate(
    model_score: F32,
    rule_score: F32,
    y: I8,
    y_train: I8,
    cfg: GateConfig | None = None,
) -> dict[str, Any]:
    """Run the gate on held-out rows in time order; return the card's ``gate`` section."""
    cfg = cfg or GateConfig()
    n = int(y.size)
    if model_score.shape != (n,) or rule_score.shape != (n,):
        raise ValueError("model_score, rule_score and y must have the same length")
    flat, direction = no_skill_score(y_train, n)
    blocks = [b.astype(np.int64) for b in np.array_split(np.arange(n), cfg.blocks) if b.size]
    comparisons = [
        {"opponent": name, **_compare(metric, model_score, other, y, blocks, cfg.z)}
        for name, other in ((RULE_BASED, rule_score), (NO_SKILL, flat))
        for metric in METRICS
    ]
    moves = int((y != 0).sum())
    failed = (
        [] if moves >= cfg.min_moves else [f"{moves} held-out moves, fewer than {cfg.min_moves}"]
    )
    failed += [
        f"{c['metric']} does not beat {c['opponent']} "
        f"(lead {_fmt(c['lead'])}, block lower bound {_fmt(c['block_lead_lower_bound'])})"
        for c in comparisons
        if not c["beats"]
    ]
    return {
        "promotable": not failed,
        "reasons": failed,
        "rule": (
            f"beat {RULE_BASED} and {NO_SKILL} on {' and '.join(METRICS)}: ahead over the whole "
            f"held-out period and mean per-block lead - {cfg.z:g} SE > 0 over {cfg.blocks} "
            "contiguous time blocks"
        ),
        "held_out_rows": n,
        "held_out_moves": moves,
        "min_moves": cfg.min_moves,
        "blocks": cfg.blocks,
        "z": cfg.z,
        "no_skill_direction": direction,
        "comparisons": comparisons,
    }


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.4f}"
