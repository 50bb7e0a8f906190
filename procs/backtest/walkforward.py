"""Walk-forward: train on period k, backtest every grid point on period k+1 with that model.

Training is ``bitrader train``'s own code (``procs.ml.train.train_from_captures``) on the whole
capture files of period k, in a task on a worker; it needs each training period's files to lie
inside it (``check_periods``), so no row of period k+1 is trained on. The model's card carries
the promotion gate's verdict (``procs.ml.gate``), and the gate still applies: a model that
fails it is never traded. With ``gate_fail = "fallback"`` (the default) period k+1 runs with
the rule scorer, as live inference does without a promotable champion, and each row's
``model`` says so and why; with ``"fail"`` those runs are failed rows carrying the gate's
reasons. A training that fails (too little data, one-sided labels) fails its period's runs.

Rows of period k+1 are ``sample = "out"``; with ``in_sample`` each model also runs on its own
training period (``sample = "in"``), for comparison only: the ranking reads ``out`` rows alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from procs.backtest.sources import Period
from procs.backtest.sweep import (
    RULE,
    Prepared,
    Runner,
    SweepError,
    SweepSpec,
    base_row,
    cache_key,
    make_task,
)
from procs.backtest.tasks import TrainTask, train_model

__all__ = ["check_periods", "walk_forward_runs"]


def check_periods(periods: list[Period]) -> None:
    """Refuse what walk-forward cannot run without training on its test period."""
    if len(periods) < 2:
        raise SweepError(
            f"walk-forward needs at least two periods; the captures cover {len(periods)} "
            "(pick a shorter --period)"
        )
    for p in periods[:-1]:
        if not p.contains_files():
            bad = next(f for f in p.files if not (p.start_ns <= f.first_ns <= f.last_ns < p.end_ns))
            raise SweepError(
                f"walk-forward trains on whole capture files (bitrader train), but {bad.url} "
                f"has books outside period {p.label}: it would train on its test period; pick "
                "a --period that holds each file whole (captures rotate daily: --period day)"
            )


def _model_for(
    train: Period, res: dict[str, Any], gate_fail: str
) -> tuple[tuple[bytes | None, str, str] | None, str | None]:
    """(model, None) to run with, or (None, error) to fail the runs with."""
    if res["status"] != "ok":
        return None, f"training on period {train.label} failed: {res.get('error')}"
    onnx: bytes = res["onnx"]
    sha = hashlib.sha256(onnx).hexdigest()
    card = res["card"]
    if card.get("promotable"):
        return (onnx, f"model trained on {train.label} ({sha[:12]})", sha), None
    why = "; ".join(card.get("gate", {}).get("reasons", [])) or "not promotable"
    text = f"the model trained on {train.label} did not pass the promotion gate: {why}"
    if gate_fail == "fail":
        return None, text
    return (None, f"the rule scorer (procs.models.scoring.fallback_score): {text}", RULE), None


def _save_model(out: Path, label: str, res: dict[str, Any]) -> None:
    import json

    d = out / "models"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{label}.onnx").write_bytes(res["onnx"])
    (d / f"{label}.card.json").write_text(json.dumps(res["card"], indent=2, sort_keys=True) + "\n")


def walk_forward_runs(
    prep: Prepared, periods: list[Period], spec: SweepSpec, runner: Runner, code: str
) -> list[dict[str, Any]]:
    """Submit the trainings; each one's runs follow when it completes (or from the cache)."""
    from procs.ml.train import TrainConfig

    cfg = spec.train if spec.train is not None else TrainConfig()
    rows: list[dict[str, Any]] = []

    def schedule(k: int, res: dict[str, Any]) -> None:
        train, test = periods[k], periods[k + 1]
        if res["status"] == "ok":
            _save_model(spec.out, train.label, res)
        model, error = _model_for(train, res, spec.gate_fail)
        targets = [(test, "out")] + ([(train, "in")] if spec.in_sample else [])
        for p, sample in targets:
            for pt in prep.points:
                row = base_row(pt, p, sample, train)
                if model is None:
                    runner.fail(row, rows, error or "no model")
                else:
                    runner.run(make_task(prep, pt, p, spec, code, model), row, rows)

    for k in range(len(periods) - 1):
        p = periods[k]
        key = cache_key(
            "train", code=code, config=asdict(cfg), captures=[f.identity() for f in p.files]
        )
        hit = runner.cache.get_model(key)
        if hit is not None:
            schedule(k, {"status": "ok", "onnx": hit[0], "card": hit[1]})
            continue
        task = TrainTask(key=key, code=code, files=tuple(f.url for f in p.files), config=cfg)

        def then(res: dict[str, Any], k: int = k, key: str = key) -> None:
            if res["status"] == "ok":
                runner.cache.put_model(key, res["onnx"], res["card"])
                runner.stats["trained"] += 1
            schedule(k, res)

        runner.submit(train_model, task, f"train-{key}", then)
    return rows
