"""The ONNX model wrapper: the only importer of onnxruntime in the project.

Loads a model file, checks its metadata against the engine's feature list, and scores batches
through IOBinding with preallocated, prebound input and output buffers (one intra-op thread).

Errors (``procs.models.errors``): ``ModelError`` -> ``ModelLoadError``, ``ModelMetadataError``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from procs.models.errors import (
    ModelError,
    ModelInfo,
    ModelLoadError,
    ModelMetadataError,
    ModelNotPromotableError,
)
from procs.models.meta import (
    INPUT_NAME,
    META_DATA_HASH,
    META_FEATURES,
    META_GATE,
    META_HORIZON,
    META_PROMOTABLE,
    META_VERSION,
)
from procs.models.meta import OUTPUT_NAME as SCORE_NAME

__all__ = [
    "ModelError",
    "ModelInfo",
    "ModelLoadError",
    "ModelMetadataError",
    "ModelNotPromotableError",
    "OnnxModel",
    "check_feature_names",
]

F32 = npt.NDArray[np.float32]

VERSION_MAX: Final = 2**32 - 1  # SIG_V1.model_version is u4
WARM_UP_ROUNDS: Final = 32
_SHA256: Final = re.compile(r"[0-9a-f]{64}")


def check_feature_names(found: Sequence[str], expected: Sequence[str], *, source: str) -> None:
    """Raise ModelMetadataError unless ``found`` equals ``expected``; name the first difference."""
    if tuple(found) == tuple(expected):
        return
    missing = [n for n in expected if n not in found]
    extra = [n for n in found if n not in expected]
    first = next(
        (i for i, (a, b) in enumerate(zip(found, expected, strict=False)) if a != b),
        min(len(found), len(expected)),
    )
    have = repr(found[first]) if first < len(found) else "nothing (list ends)"
    want = repr(expected[first]) if first < len(expected) else "nothing (list ends)"
    detail = [f"first difference at index {first}: model has {have}, engine expects {want}"]
    if missing:
        detail.append(f"missing from the model: {missing}")
    if extra:
        detail.append(f"not in the engine: {extra}")
    if not missing and not extra:
        detail.append("same names in a different order")
    raise ModelMetadataError(
        f"model {source}: feature_names do not match procs.features FEATURES "
        f"(model {len(found)} names, engine {len(expected)}); " + "; ".join(detail)
    )


def _read_metadata(meta: dict[str, str], expected: Sequence[str], source: str) -> ModelInfo:
    raw = meta.get(META_FEATURES)
    if raw is None:
        raise ModelMetadataError(f"model {source}: no {META_FEATURES!r} in metadata_props")
    try:
        names = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelMetadataError(f"model {source}: {META_FEATURES!r} is not JSON: {exc}") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ModelMetadataError(f"model {source}: {META_FEATURES!r} must be a JSON list of names")
    check_feature_names(names, expected, source=source)
    version_raw = meta.get(META_VERSION, "")
    if not version_raw.isdigit() or int(version_raw) > VERSION_MAX:
        raise ModelMetadataError(
            f"model {source}: {META_VERSION!r} must be an integer in [0, {VERSION_MAX}], "
            f"was {version_raw!r}"
        )
    data_hash = meta.get(META_DATA_HASH, "")
    if not _SHA256.fullmatch(data_hash):
        raise ModelMetadataError(
            f"model {source}: {META_DATA_HASH!r} must be 64 lowercase hex digits, was {data_hash!r}"
        )
    try:
        horizon = float(meta[META_HORIZON]) if META_HORIZON in meta else None
    except ValueError:
        raise ModelMetadataError(f"model {source}: {META_HORIZON!r} is not a number") from None
    promotable, reasons = _read_gate(meta, source)
    return ModelInfo(
        source=source,
        file_sha256="",
        version=int(version_raw),
        data_sha256=data_hash,
        feature_names=tuple(names),
        horizon_s=horizon,
        promotable=promotable,
        gate_reasons=reasons,
    )


def _read_gate(meta: dict[str, str], source: str) -> tuple[bool | None, tuple[str, ...]]:
    raw = meta.get(META_PROMOTABLE)
    if raw is None:
        return None, ()
    if raw not in ("true", "false"):
        raise ModelMetadataError(
            f"model {source}: {META_PROMOTABLE!r} must be 'true' or 'false', was {raw!r}"
        )
    reasons: tuple[str, ...] = ()
    try:
        gate = json.loads(meta.get(META_GATE, "{}"))
        if isinstance(gate, dict) and isinstance(gate.get("reasons"), list):
            reasons = tuple(str(r) for r in gate["reasons"])
    except json.JSONDecodeError:
        reasons = (f"{META_GATE!r} is not JSON",)
    return raw == "true", reasons


def check_promotable(info: ModelInfo) -> None:
    """Raise ModelNotPromotableError unless the model passed the promotion gate (procs.ml.gate)."""
    if info.promotable is True:
        return
    why = (
        "it carries no promotion-gate verdict (metadata 'promotable' missing; "
        "retrain with bitrader train)"
        if info.promotable is None
        else "it did not pass the promotion gate: " + "; ".join(info.gate_reasons or ("?",))
    )
    raise ModelNotPromotableError(f"model {info.source}: not promotable to champion: {why}")


def _session(data: bytes, source: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3  # errors only: warnings would go to stderr per session
    try:
        return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped exception family
        raise ModelLoadError(f"model {source}: onnxruntime cannot load it: {exc}") from None


def _check_io(sess: ort.InferenceSession, n_features: int, source: str) -> None:
    inputs = sess.get_inputs()
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        names = [i.name for i in inputs]
        raise ModelLoadError(f"model {source}: needs exactly one input {INPUT_NAME!r}, has {names}")
    shape = inputs[0].shape
    if inputs[0].type != "tensor(float)" or len(shape) != 2 or shape[1] != n_features:
        raise ModelLoadError(
            f"model {source}: input {INPUT_NAME!r} must be float [N, {n_features}], "
            f"was {inputs[0].type} {shape}"
        )
    outputs = {o.name: o for o in sess.get_outputs()}
    score = outputs.get(SCORE_NAME)
    if score is None or score.type != "tensor(float)":
        raise ModelLoadError(
            f"model {source}: needs a float output {SCORE_NAME!r}, has {sorted(outputs)}"
        )


class OnnxModel:
    """One ONNX session with preallocated, prebound buffers for batches of 1..``batch_max``.

    ``score`` returns a view into the output buffer, valid until the next call. One thread.
    """

    def __init__(self, sess: ort.InferenceSession, info: ModelInfo, batch_max: int) -> None:
        if batch_max < 1:
            raise ValueError(f"batch_max must be >= 1, was {batch_max}")
        self._sess = sess
        self.info = info
        self.version = info.version
        self.batch_max = batch_max
        self.n_features = len(info.feature_names)
        self._x: F32 = np.zeros((batch_max, self.n_features), dtype=np.float32)
        probe = sess.run(None, {INPUT_NAME: self._x[:1]})
        names = [o.name for o in sess.get_outputs()]
        # every output gets a preallocated buffer, so ORT never allocates per call
        self._outs: dict[str, npt.NDArray[Any]] = {
            name: np.zeros((batch_max, *np.shape(val)[1:]), dtype=np.asarray(val).dtype)
            for name, val in zip(names, probe, strict=True)
        }
        score = self._outs[SCORE_NAME]
        if score.dtype != np.float32 or score.size != batch_max:
            raise ModelLoadError(
                f"model {info.source}: {SCORE_NAME!r} must be one float per row, "
                f"got {score.dtype} {np.shape(probe[names.index(SCORE_NAME)])} for one row"
            )
        self._y: F32 = score.reshape(batch_max)
        # per batch size: (binding, input view, score view), made on first use
        self._bindings: list[tuple[Any, F32, F32] | None] = [None] * (batch_max + 1)
        self._run = sess.run_with_iobinding

    @classmethod
    def load(
        cls, path: str | Path, expected_features: Sequence[str], *, batch_max: int = 1024
    ) -> OnnxModel:
        """Read ``path``, check its metadata against ``expected_features``, bind and warm up.

        Raises
        ------
        ModelLoadError
            The file is missing, unreadable, not ONNX, or has the wrong inputs/outputs.
        ModelMetadataError
            Feature names (exactly, in order), version or training-data hash are wrong.
        """
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"model {path}: cannot read: {exc}") from None
        return cls.from_bytes(data, expected_features, batch_max=batch_max, source=str(path))

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        expected_features: Sequence[str],
        *,
        batch_max: int = 1024,
        source: str = "<bytes>",
        require_promotable: bool = False,
    ) -> OnnxModel:
        """Like ``load`` for model bytes already read (the hot-reload path reads once).

        ``require_promotable`` (the champion's loader): raise ``ModelNotPromotableError`` unless
        the metadata says the model passed the promotion gate.
        """
        sess = _session(data, source)
        meta = dict(sess.get_modelmeta().custom_metadata_map)
        info = _read_metadata(meta, expected_features, source)
        _check_io(sess, len(expected_features), source)
        if require_promotable:
            check_promotable(info)
        info = ModelInfo(
            source=info.source,
            file_sha256=hashlib.sha256(data).hexdigest(),
            version=info.version,
            data_sha256=info.data_sha256,
            feature_names=info.feature_names,
            horizon_s=info.horizon_s,
            promotable=info.promotable,
            gate_reasons=info.gate_reasons,
        )
        try:
            model = cls(sess, info, batch_max)
            model.warm_up()  # batches of 1 and batch_max: refuses a fixed batch size
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime's untyped failures (e.g. a fixed batch size)
            raise ModelLoadError(
                f"model {source}: cannot score batches of 1..{batch_max}: {exc}"
            ) from None
        return model

    def _binding(self, n: int) -> tuple[Any, F32, F32]:
        if n > self.batch_max or n < 1:
            raise ValueError(f"batch of {n} rows, this model takes 1..{self.batch_max}")
        iob = self._sess.io_binding()
        iob.bind_ortvalue_input(INPUT_NAME, ort.OrtValue.ortvalue_from_numpy(self._x[:n]))
        for name, buf in self._outs.items():
            iob.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(buf[:n]))
        bound = (iob, self._x[:n], self._y[:n])
        self._bindings[n] = bound
        return bound

    def score(self, x: F32) -> F32:
        """Score rows ``x`` (float32 [n, >= n_features]; extra columns ignored) -> float32 [n].

        The result is a view into the model's output buffer, overwritten by the next call.
        """
        n = x.shape[0]
        bound = self._bindings[n] if 0 < n <= self.batch_max else None
        iob, xv, yv = bound or self._binding(n)
        xv[...] = x[:, : self.n_features]  # the bound input: ORT reads it in place
        self._run(iob)
        return yv

    def run_session(self, x: F32) -> F32:
        """Score ``x`` through plain ``session.run`` (reference path for tests; allocates)."""
        out = self._sess.run(
            [SCORE_NAME], {INPUT_NAME: np.ascontiguousarray(x[:, : self.n_features])}
        )
        return np.asarray(out[0], dtype=np.float32).reshape(-1)

    def warm_up(self, rounds: int = WARM_UP_ROUNDS) -> None:
        """Run the batch-1 and ``batch_max`` bindings a few times (first runs are slow)."""
        one = np.zeros((1, self.n_features), dtype=np.float32)
        full = np.zeros((self.batch_max, self.n_features), dtype=np.float32)
        for _ in range(rounds):
            self.score(one)
        for _ in range(min(rounds, 4)):
            self.score(full)
