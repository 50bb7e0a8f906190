"""Inference latency per signal: the model wrapper + output checks vs bare prebound IOBinding.

``inference_latency``: batch of 1, the per-signal path the process takes (copy the FEAT_V1 ``x``
row into the bound input, ``run_with_iobinding``, time it, ``check_output``) against
``session.run_with_iobinding`` of the same model with everything prebound and nothing else.
``inference_step``: one whole ``InferenceProc.step`` per signal (ring in, score, checks, SIG_V1
out, wake-up, hit tracking), against the same baseline, to show what the rest of the step costs.
Both are measured interleaved in blocks so machine noise hits both alike.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from prometheus_client import CollectorRegistry

from procs._config import RuntimeConfig
from procs.featurecalc.engine import FEATURES
from procs.ml.train import INPUT_NAME
from procs.models.config import InferenceConfig
from procs.models.errors import ModelError
from procs.models.health import check_output
from procs.models.model import OnnxModel
from procs.models.reload import ModelWatcher
from procs.models.stage import CHAMPION, InferenceProc, make_metrics
from shm.records import FEAT_V1, SIG_V1
from shm.ring import RingReader, RingSpec, RingWriter
from tests.bench._common import Result, percentiles_us
from tests.helpers.inference_feats import make_feats
from tests.helpers.inference_models import sklearn_model

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "configs" / "models" / "default.onnx"
BLOCK = 1000
BUDGET_NS = 2_000_000


def _model_bytes() -> tuple[bytes, str]:
    try:
        data = DEFAULT_MODEL.read_bytes()
        OnnxModel.from_bytes(data, FEATURES, batch_max=1)
        return data, "configs/models/default.onnx"
    except (OSError, ModelError):
        return sklearn_model(), "skl2onnx StandardScaler+LR (default.onnx not usable)"


def _bare(data: bytes, x: np.ndarray) -> Callable[[], None]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {INPUT_NAME: x})
    iob = sess.io_binding()
    iob.bind_ortvalue_input(INPUT_NAME, ort.OrtValue.ortvalue_from_numpy(x))
    keep = [np.zeros_like(o) for o in outs]
    for o, buf in zip(sess.get_outputs(), keep, strict=True):
        iob.bind_ortvalue_output(o.name, ort.OrtValue.ortvalue_from_numpy(buf))
    run = sess.run_with_iobinding

    def call() -> None:
        run(iob)

    call.keep = (sess, iob, keep)  # type: ignore[attr-defined]  # keep bound buffers alive
    return call


def _wrapped(model: OnnxModel, row: np.ndarray) -> Callable[[], None]:
    score, clock = model.score, time.perf_counter_ns

    def call() -> None:
        t = clock()
        y = score(row)
        check_output(y, clock() - t, BUDGET_NS)

    return call


class _NoWake:
    def notify(self) -> None:
        pass


def _step_rig(data: bytes, tmp: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    ns = f"bench{uuid.uuid4().hex[:8]}"
    path = tmp / "m.onnx"
    path.write_bytes(data)
    cfg = InferenceConfig(
        runtime=RuntimeConfig(pub_endpoint=f"ipc://{tmp}/a", control_endpoint=f"ipc://{tmp}/b"),
        feat_ring=f"{ns}.features.feat",
        sig_ring=f"{ns}.inference.sig",
        features_pub=f"ipc://{tmp}/f",
        model_path=str(path),
        batch_max=64,
        sig_capacity_records=1 << 12,
        reload_check_s=3600.0,
    )
    feat = RingWriter(RingSpec(name=cfg.feat_ring, dtype=FEAT_V1, capacity=1 << 12))
    sig = RingWriter(RingSpec(name=cfg.sig_ring, dtype=SIG_V1, capacity=cfg.sig_capacity_records))

    def load(b: bytes, src: str) -> OnnxModel:
        return OnnxModel.from_bytes(b, FEATURES, batch_max=cfg.batch_max, source=src)

    watch: ModelWatcher[OnnxModel] = ModelWatcher(CHAMPION, str(path), load)
    proc = InferenceProc(
        cfg,
        feat=RingReader(cfg.feat_ring, FEAT_V1),
        sig=sig,
        waker=_NoWake(),
        metrics=make_metrics(CollectorRegistry()),
        champion=watch.load_now(),
        champion_watch=watch,
    )
    recs = make_feats(0, 1 << 16)
    state = {"i": 0}
    step, publish = proc.step, feat.publish

    def one() -> None:
        i = state["i"]
        state["i"] = i + 1
        publish(recs[i & 0xFFFF : (i & 0xFFFF) + 1])
        t = time.perf_counter_ns()
        step()
        samples.append(time.perf_counter_ns() - t)

    samples: list[int] = []
    one.samples = samples  # type: ignore[attr-defined]

    def close() -> None:
        proc.close()
        feat.close()

    return one, close


def _interleaved(calls: dict[str, Callable[[], None]], n: int) -> dict[str, np.ndarray]:
    out = {k: np.zeros(n, np.int64) for k in calls}
    clock = time.perf_counter_ns
    for fn in calls.values():  # warm-up
        for _ in range(BLOCK):
            fn()
    gc.disable()
    try:
        for start in range(0, n, BLOCK):
            for name, fn in calls.items():
                buf = out[name]
                for i in range(start, min(start + BLOCK, n)):
                    t = clock()
                    fn()
                    buf[i] = clock() - t
    finally:
        gc.enable()
    return out


def run(quick: bool) -> list[Result]:
    n = 20_000 if quick else 200_000
    data, kind = _model_bytes()
    model = OnnxModel.from_bytes(data, FEATURES, batch_max=64)
    rec = make_feats(0, 1)
    row = rec["x"]  # [1, 32] strided view of a FEAT_V1 record, as the process passes it
    x = np.ascontiguousarray(row[:, : len(FEATURES)])
    bare = _bare(data, x)
    ours = _wrapped(model, row)
    with tempfile.TemporaryDirectory(prefix="bench-inf-") as tmp:
        step, close = _step_rig(data, Path(tmp))
        try:
            got = _interleaved({"bare": bare, "ours": ours, "step": step}, n)
        finally:
            close()
    step_ns = np.asarray(step.samples[BLOCK:], np.int64)  # type: ignore[attr-defined]
    b50, b99 = percentiles_us(got["bare"], (50, 99))
    o50, o99 = percentiles_us(got["ours"], (50, 99))
    s50, s99 = percentiles_us(step_ns, (50, 99))
    base = "bare_run_with_iobinding"
    print(f"inference bench model: {kind}", file=sys.stderr, flush=True)
    return [
        Result("inference_latency", "p50 per signal", o50, "us", base, b50, "p50 ratio <= 1.5"),
        Result("inference_latency", "p99 per signal", o99, "us", base, b99, ""),
        Result("inference_step", "p50 per signal", s50, "us", base, b50, ""),
        Result("inference_step", "p99 per signal", s99, "us", base, b99, ""),
    ]
