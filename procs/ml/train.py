"""Train the signal model on captures, export ONNX with metadata, write the model card.

Model: standardise, then multinomial logistic regression on the dead-banded label (-1, 0, +1);
the ONNX graph's output ``score`` is P(up) - P(down) in [-1, 1]. The split is by time, never
shuffled: validation is the last ``val_frac`` of the rows' time span and training ends at least
``gap_s`` (>= the label horizon) before it, so no training label looks into validation time.
Deterministic: same captures + config (seed included) give a byte-identical ONNX file and card.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from procs.featurecalc.engine import FEATURES, N_FEATURES
from procs.ml import gate
from procs.ml.dataset import Dataset, build_dataset
from procs.models import meta
from procs.models.scoring import LinearScorer, fallback_score

# the model's names live in procs.models.meta (import-free, for inference); re-exported here
INPUT_NAME: Final = meta.INPUT_NAME
OUTPUT_NAME: Final = meta.OUTPUT_NAME
PROBA_NAME: Final = meta.PROBA_NAME
META_FEATURES: Final = meta.META_FEATURES
META_VERSION: Final = meta.META_VERSION
META_DATA_HASH: Final = meta.META_DATA_HASH
META_HORIZON: Final = meta.META_HORIZON
META_DEADBAND: Final = meta.META_DEADBAND
META_CREATED: Final = meta.META_CREATED
META_LINEAR: Final = meta.META_LINEAR
META_SEED: Final = meta.META_SEED
META_PROMOTABLE: Final = meta.META_PROMOTABLE
META_GATE: Final = meta.META_GATE
OPSET: Final = {"": 17, "ai.onnx.ml": 3}

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    horizon_s: float = 1.0  # on simex's market, 1 s is where the features keep their edge
    deadband_bps: float = 0.5
    val_frac: float = 0.25
    gap_s: float | None = None  # None: the horizon; never less than the horizon
    seed: int = 0
    c: float = 0.1  # inverse L2 strength of the logistic regression
    max_iter: int = 2000
    model_version: int = 1
    created_utc: str | None = None  # None: the end of the training data (reproducible)
    gate_blocks: int = 10  # the promotion gate's time blocks over the held-out period
    gate_z: float = 2.0  # its margin: per-block mean lead - z standard errors must stay > 0

    def __post_init__(self) -> None:
        if not 0.0 < self.val_frac < 1.0:
            raise ValueError(f"val_frac must be in (0, 1), was {self.val_frac}")
        if self.horizon_s <= 0 or self.deadband_bps < 0:
            raise ValueError(f"bad label: horizon_s={self.horizon_s} deadband={self.deadband_bps}")
        if self.gap_s is not None and self.gap_s < self.horizon_s:
            raise ValueError(f"gap_s must be >= horizon_s ({self.horizon_s}), was {self.gap_s}")
        gate.GateConfig(blocks=self.gate_blocks, z=self.gate_z)  # raises ValueError when bad


@dataclass(frozen=True, slots=True)
class Split:
    train: I64  # row indices, in time order
    val: I64
    train_start_ns: int
    train_end_ns: int  # last training row
    val_start_ns: int  # first validation row; > train_end_ns + gap_ns
    val_end_ns: int
    gap_ns: int


def time_split(ts_ns: I64, val_frac: float, gap_ns: int) -> Split:
    """Split rows by time: validation is the last ``val_frac``, training ends ``gap_ns`` before."""
    order = np.argsort(ts_ns, kind="stable")
    t_sorted = ts_ns[order]
    t_cut = int(t_sorted[min(int(t_sorted.size * (1.0 - val_frac)), t_sorted.size - 1)])
    train = order[t_sorted < t_cut - gap_ns].astype(np.int64)
    val = order[t_sorted >= t_cut].astype(np.int64)
    if train.size == 0 or val.size == 0:
        raise ValueError(
            f"time split left an empty side (train={train.size}, val={val.size}): "
            "need more data than the gap"
        )
    return Split(
        train=train,
        val=val,
        train_start_ns=int(ts_ns[train[0]]),
        train_end_ns=int(ts_ns[train[-1]]),
        val_start_ns=int(ts_ns[val[0]]),
        val_end_ns=int(ts_ns[val[-1]]),
        gap_ns=gap_ns,
    )


def _utc(ns: int) -> str:
    secs, rem = divmod(ns, 1_000_000_000)
    t = dt.datetime.fromtimestamp(secs, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{t}.{rem // 1000:06d}Z"


def fit(ds: Dataset, split: Split, cfg: TrainConfig) -> tuple[Any, LinearScorer]:
    """Fit the sklearn pipeline on the training rows; return it and its numpy reference."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    y = ds.y[split.train]
    if not {-1, 1} <= set(np.unique(y).tolist()):
        raise ValueError("training labels need both up (+1) and down (-1) moves")
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("lr", LogisticRegression(C=cfg.c, max_iter=cfg.max_iter, random_state=cfg.seed)),
        ]
    )
    pipe.fit(ds.x[split.train].astype(np.float64), y)
    scaler, lr = pipe.named_steps["scale"], pipe.named_steps["lr"]
    scorer = LinearScorer(
        feature_names=FEATURES,
        mean=np.asarray(scaler.mean_, dtype=np.float64),
        scale=np.asarray(scaler.scale_, dtype=np.float64),
        coef=np.asarray(lr.coef_, dtype=np.float64),
        intercept=np.asarray(lr.intercept_, dtype=np.float64),
        classes=tuple(int(c) for c in lr.classes_),
    )
    return pipe, scorer


def metrics(
    score: npt.NDArray[np.float32], y: npt.NDArray[np.int8], ret_bps: Any
) -> dict[str, Any]:
    """Validation metrics of a score against labels (see docs/models.md for their meaning)."""
    from sklearn.metrics import roc_auc_score

    s = np.asarray(score, dtype=np.float64)
    moved = y != 0
    called = moved & (s != 0.0)
    updown = y[moved] == 1
    auc = float(roc_auc_score(updown, s[moved])) if 0 < updown.sum() < updown.size else None
    ic = float(np.corrcoef(s, ret_bps)[0, 1]) if s.std() > 0 and np.std(ret_bps) > 0 else None
    return {
        "n": int(y.size),
        "class_balance": {str(c): int((y == c).sum()) for c in (-1, 0, 1)},
        "hit_rate": float((np.sign(s[called]) == y[called]).mean()) if called.any() else None,
        "auc_up_vs_down": auc,
        "information_coefficient": ic,
        "mean_abs_score": float(np.abs(s).mean()),
    }


def export_onnx(pipe: Any, scorer: LinearScorer, meta: dict[str, str]) -> bytes:
    """Convert the pipeline with skl2onnx and add the ``score`` output; return the model bytes."""
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    lr = pipe.named_steps["lr"]
    model = convert_sklearn(
        pipe,
        initial_types=[(INPUT_NAME, FloatTensorType([None, N_FEATURES]))],
        options={id(lr): {"zipmap": False}},
        target_opset=OPSET,
    )
    g = model.graph
    up, down = scorer.classes.index(1), scorer.classes.index(-1)
    g.initializer.extend(
        [
            helper.make_tensor("score_up_index", TensorProto.INT64, [], [up]),
            helper.make_tensor("score_down_index", TensorProto.INT64, [], [down]),
        ]
    )
    g.node.extend(
        [
            helper.make_node("Gather", [PROBA_NAME, "score_up_index"], ["p_up"], axis=1),
            helper.make_node("Gather", [PROBA_NAME, "score_down_index"], ["p_down"], axis=1),
            helper.make_node("Sub", ["p_up", "p_down"], [OUTPUT_NAME]),
        ]
    )
    proba = next(o for o in g.output if o.name == PROBA_NAME)
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None]), proba])
    model.doc_string = "bitrader signal model: score = P(up) - P(down) in [-1, 1]"
    g.name = "bitrader_signal"  # skl2onnx names the graph with a random uuid: keep bytes stable
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def train(ds: Dataset, cfg: TrainConfig, sources: list[str]) -> tuple[bytes, dict[str, Any]]:
    """Split, fit, evaluate and export; return (ONNX bytes, model card)."""
    horizon_ns = int(cfg.horizon_s * 1e9)
    gap_ns = int((cfg.gap_s if cfg.gap_s is not None else cfg.horizon_s) * 1e9)
    split = time_split(ds.ts_ns, cfg.val_frac, gap_ns)
    pipe, scorer = fit(ds, split, cfg)
    data_hash = ds.sha256()
    created = cfg.created_utc or _utc(int(ds.ts_ns.max()))
    x_val, y_val = ds.x[split.val], ds.y[split.val]
    verdict = gate.evaluate(
        scorer.score(x_val),
        fallback_score(x_val),
        y_val,
        ds.y[split.train],
        gate.GateConfig(blocks=cfg.gate_blocks, z=cfg.gate_z),
    )
    meta = {
        META_FEATURES: json.dumps(list(FEATURES)),
        META_VERSION: str(cfg.model_version),
        META_DATA_HASH: data_hash,
        META_HORIZON: repr(cfg.horizon_s),
        META_DEADBAND: repr(cfg.deadband_bps),
        META_CREATED: created,
        META_SEED: str(cfg.seed),
        META_LINEAR: scorer.to_json(),
        META_PROMOTABLE: "true" if verdict["promotable"] else "false",
        META_GATE: json.dumps({"promotable": verdict["promotable"], "reasons": verdict["reasons"]}),
    }
    onnx_bytes = export_onnx(pipe, scorer, meta)
    xs = {name: ds.x[idx] for name, idx in (("train", split.train), ("validation", split.val))}
    card: dict[str, Any] = {
        "model_version": cfg.model_version,
        "created_utc": created,
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": [None, N_FEATURES]},
        "outputs": {
            OUTPUT_NAME: "float32 [N]: P(up) - P(down) in [-1, 1]",
            PROBA_NAME: f"float32 [N, {len(scorer.classes)}]: classes {list(scorer.classes)}",
        },
        "feature_names": list(FEATURES),
        "label": {
            "kind": "sign of the mid log-return over the horizon, with a dead-band",
            "horizon_s": cfg.horizon_s,
            "deadband_bps": cfg.deadband_bps,
        },
        "model": "StandardScaler + multinomial LogisticRegression (scikit-learn), skl2onnx",
        "config": asdict(cfg),
        "data": {"sources": sources, "rows": len(ds), "sha256": data_hash},
        "split": {
            "train_rows": int(split.train.size),
            "validation_rows": int(split.val.size),
            "train_start_utc": _utc(split.train_start_ns),
            "train_end_utc": _utc(split.train_end_ns),
            "gap_s": gap_ns / 1e9,
            "validation_start_utc": _utc(split.val_start_ns),
            "validation_end_utc": _utc(split.val_end_ns),
            "label_horizon_s": horizon_ns / 1e9,
        },
        "metrics": {
            name: metrics(scorer.score(x), ds.y[idx], ds.ret_bps[idx])
            for name, x, idx in (
                ("train", xs["train"], split.train),
                ("validation", xs["validation"], split.val),
            )
        },
        "baseline_fallback_validation": metrics(
            fallback_score(xs["validation"]), ds.y[split.val], ds.ret_bps[split.val]
        ),
        "gate": verdict,
        "promotable": verdict["promotable"],
    }
    return onnx_bytes, card


def card_path(onnx_path: str | Path) -> Path:
    """``NAME.onnx`` -> ``NAME.card.json`` beside it."""
    p = Path(onnx_path)
    return p.with_name(p.name.removesuffix(".onnx") + ".card.json")


def train_from_captures(
    paths: list[Path], out: Path, cfg: TrainConfig, *, processes: int = 1
) -> dict[str, Any]:
    """Build the dataset, train, write ``out`` (ONNX) and its card beside it; return the card."""
    ds = build_dataset(
        paths, horizon_s=cfg.horizon_s, deadband_bps=cfg.deadband_bps, processes=processes
    )
    onnx_bytes, card = train(ds, cfg, [p.name for p in paths])
    out.parent.mkdir(parents=True, exist_ok=True)
    # the card first, then the model: a watcher of ``out`` never sees a model without its card,
    # and each file appears whole (written aside, then renamed over)
    _write_atomic(card_path(out), (json.dumps(card, indent=2, sort_keys=True) + "\n").encode())
    _write_atomic(out, onnx_bytes)
    return card


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
