"""Tiny ONNX signal models for inference tests: score = tanh(x @ w + b) * gain + offset.

``offset=nan`` gives a model whose output is NaN, ``offset=3`` one whose output is out of range.
``sklearn_model`` builds a model of the default model's kind (StandardScaler + LR via skl2onnx).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from procs.featurecalc.engine import FEATURES, N_FEATURES
from procs.ml.train import (
    INPUT_NAME,
    META_DATA_HASH,
    META_FEATURES,
    META_GATE,
    META_HORIZON,
    META_PROMOTABLE,
    META_VERSION,
)
from procs.ml.train import OUTPUT_NAME as SCORE_NAME

DATA_HASH = hashlib.sha256(b"inference tests").hexdigest()


def default_weights(n: int = N_FEATURES, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.3, n).astype(np.float32)


def metadata(
    *,
    version: int | str = 1,
    feature_names: Sequence[str] = FEATURES,
    data_hash: str = DATA_HASH,
    horizon_s: float = 1.0,
    promotable: bool | None = True,
) -> dict[str, str]:
    """Metadata of a test model; ``promotable`` is the gate verdict it claims (None: none)."""
    meta = {
        META_FEATURES: json.dumps(list(feature_names)),
        META_VERSION: str(version),
        META_DATA_HASH: data_hash,
        META_HORIZON: repr(horizon_s),
    }
    if promotable is not None:
        meta[META_PROMOTABLE] = "true" if promotable else "false"
        reasons = [] if promotable else ["auc_up_vs_down does not beat rule_based (test model)"]
        meta[META_GATE] = json.dumps({"promotable": promotable, "reasons": reasons})
    return meta


def model_bytes(
    *,
    weights: np.ndarray | None = None,
    bias: float = 0.0,
    gain: float = 1.0,
    offset: float = 0.0,
    n_inputs: int = N_FEATURES,
    meta: dict[str, str] | None = None,
    batch_dim: int | None = None,
) -> bytes:
    w = default_weights(n_inputs) if weights is None else np.asarray(weights, np.float32)
    inits = [
        helper.make_tensor("w", TensorProto.FLOAT, [n_inputs, 1], w.ravel().tolist()),
        helper.make_tensor("b", TensorProto.FLOAT, [1], [bias]),
        helper.make_tensor("gain", TensorProto.FLOAT, [1], [gain]),
        helper.make_tensor("offset", TensorProto.FLOAT, [1], [offset]),
        helper.make_tensor("flat", TensorProto.INT64, [1], [-1]),
    ]
    nodes = [
        helper.make_node("MatMul", [INPUT_NAME, "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["z"]),
        helper.make_node("Tanh", ["z"], ["t"]),
        helper.make_node("Mul", ["t", "gain"], ["g"]),
        helper.make_node("Add", ["g", "offset"], ["s2"]),
        helper.make_node("Reshape", ["s2", "flat"], [SCORE_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_signal",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [batch_dim, n_inputs])],
        [helper.make_tensor_value_info(SCORE_NAME, TensorProto.FLOAT, [batch_dim])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    helper.set_model_props(model, metadata() if meta is None else meta)
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def reference_score(
    x: np.ndarray, weights: np.ndarray | None = None, bias: float = 0.0
) -> np.ndarray:
    w = default_weights() if weights is None else weights
    return np.tanh(x[:, :N_FEATURES].astype(np.float64) @ w.astype(np.float64) + bias)


def write_model(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (a reloader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def sklearn_model(seed: int = 0, version: int = 1) -> bytes:
    """A StandardScaler + multinomial LR pipeline exported by procs.ml.train (default's kind)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from procs.ml.train import META_LINEAR, export_onnx
    from procs.models.scoring import LinearScorer

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, N_FEATURES))
    y = np.sign(x[:, 2] + 0.5 * x[:, 9] + rng.normal(0, 0.5, 3000)).astype(np.int8)
    y[np.abs(x[:, 0]) < 0.2] = 0
    pipe = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression(max_iter=500))])
    pipe.fit(x, y)
    scaler, lr = pipe.named_steps["scale"], pipe.named_steps["lr"]
    scorer = LinearScorer(
        feature_names=FEATURES,
        mean=np.asarray(scaler.mean_),
        scale=np.asarray(scaler.scale_),
        coef=np.asarray(lr.coef_),
        intercept=np.asarray(lr.intercept_),
        classes=tuple(int(c) for c in lr.classes_),
    )
    meta = metadata(version=version)
    meta[META_LINEAR] = scorer.to_json()
    return export_onnx(pipe, scorer, meta)


def trained_unpromotable_model(version: int = 1, seed: int = 8) -> bytes:
    """A model by the real trainer (procs.ml.train.train) fitted to noise: the gate fails it."""
    from procs.ml.dataset import Dataset
    from procs.ml.train import TrainConfig, train

    rng = np.random.default_rng(seed)
    n = 6000
    ret = rng.normal(0.0, 2.0, n)
    ds = Dataset(
        x=rng.normal(size=(n, N_FEATURES)).astype(np.float32),
        ret_bps=ret,
        y=np.sign(np.where(np.abs(ret) > 0.5, ret, 0.0)).astype(np.int8),
        ts_ns=(np.arange(n) * 50_000_000).astype(np.int64),
        symbol_id=np.zeros(n, np.int32),
    )
    data, card = train(ds, TrainConfig(seed=seed, model_version=version), ["noise"])
    if card["promotable"]:
        raise AssertionError("a model fitted to noise passed the gate")
    return data
