"""The inference process across real process boundaries: feat ring in, sig ring out, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from ipc.messages import (
    hb_topic,
    wake_topic,
)
from ipc.sockets import WakeSender, bind_pub, connect_sub
from procs.group.health import query_health
from shm.records import FEAT_V1, FLAG_FALLBACK, FLAG_STALE, SIG_V1
from shm.ring import RingReader, RingSpec, RingWriter, attach_reader
from tests.conftest import ROOT
from tests.helpers.inference_feats import make_feats
from tests.helpers.inference_models import (
    metadata,
    model_bytes,
    reference_score,
    trained_unpromotable_model,
    write_model,
)
from tests.helpers.poll import eventually

pytestmark = pytest.mark.integration

CONFIG = """
[inference]
feat_ring = "{{ns}}.features.feat"
sig_ring = "{{ns}}.inference.sig"
features_pub = "ipc://{{run_dir}}/features.pub"
model_path = "{model_path}"
sig_capacity_records = 1024
batch_max = 64
reload_check_s = 0.05
latency_budget_s = 0.5  # a loaded test machine must not trip the budget
{extra}

[inference.runtime]
pub_endpoint = "ipc://{{run_dir}}/inference.pub"
control_endpoint = "ipc://{{run_dir}}/inference.ctl"
waiter = "hybrid"
max_sleep_s = 0.01
heartbeat_s = 0.05
"""


class Inference:
    def __init__(self, proc: subprocess.Popen[str], run_dir: Path) -> None:
        self.proc = proc
        self.pub = f"ipc://{run_dir}/inference.pub"
        self.ctl = f"ipc://{run_dir}/inference.ctl"

    def health(self) -> dict[str, object] | None:
        try:
            counters = query_health(self.ctl, 0.5)["counters"]
        except TimeoutError:
            return None  # not answering yet: callers poll
        assert isinstance(counters, dict)
        return dict(counters)

    def finish(self, timeout_s: float = 15) -> tuple[int, str]:
        out, _ = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, out


@pytest.fixture
def feat_ring(ns: str) -> Iterator[RingWriter]:
    with RingWriter(RingSpec(name=f"{ns}.features.feat", dtype=FEAT_V1, capacity=4096)) as w:
        yield w


@pytest.fixture
def start(tmp_path: Path, run_dir: Path, ns: str) -> Iterator[Callable[..., Inference]]:
    started: list[subprocess.Popen[str]] = []

    def go(model_path: Path, extra: str = "") -> Inference:
        cfg = tmp_path / "inference.toml"
        cfg.write_text(textwrap.dedent(CONFIG.format(model_path=model_path, extra=extra)))
        env = {**os.environ, "BITRADER_RUN_DIR": str(run_dir), "BITRADER_NS": ns}
        proc = subprocess.Popen(
            [sys.executable, "-m", "procs.inference", str(cfg)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(proc)
        return Inference(proc, run_dir)

    yield go
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _collect(reader: RingReader, n: int) -> np.ndarray:
    got: list[np.ndarray] = []

    def enough() -> bool:
        got.append(reader.poll(4096))
        return sum(len(g) for g in got) >= n

    eventually(enough, timeout_s=15)
    return np.concatenate(got)


def test_inference_one_signal_per_feature_with_stamps_then_sigterm_exit_0(
    start, feat_ring, tmp_path, run_dir, ns
):
    model = write_model(tmp_path / "m.onnx", model_bytes(meta=metadata(version=3)))
    pub = bind_pub(f"ipc://{run_dir}/features.pub")
    waker = WakeSender(pub, wake_topic("feat"))
    inf = start(model)
    eventually(inf.health, timeout_s=30)
    sig = attach_reader(f"{ns}.inference.sig", SIG_V1, 10, from_start=True)
    sub = connect_sub(inf.pub, [wake_topic("sig"), hb_topic("inference")])
    try:
        eventually(lambda: sub.recv(0.05) is not None, timeout_s=10)  # subscription is live
        sub.drain()
        feats = make_feats(0, 300)
        feats["flags"][::7] = FLAG_STALE
        for i in range(6):
            feat_ring.publish(feats[i * 50 : (i + 1) * 50])
            waker.notify()

        out = _collect(sig, len(feats))
        woken = eventually(
            lambda: (m := sub.recv(0.05)) is not None and m[0] == wake_topic("sig"), timeout_s=5
        )
        health = eventually(lambda: (h := inf.health()) and h["records_total"] == 300 and h)
        inf.proc.send_signal(signal.SIGTERM)
        rc, log = inf.finish()
    finally:
        sub.close()
        sig.close()
        pub.close()

    assert len(out) == len(feats)
    for name in ("seq", "ts_event_ns", "ts_recv_ns", "ts_feat_ns", "symbol_id", "mid", "flags"):
        np.testing.assert_array_equal(out[name], feats[name])
    np.testing.assert_allclose(out["score"], reference_score(feats["x"]), atol=1e-6)
    assert np.all(out["model_version"] == 3)
    assert np.all(out["ts_sig_ns"] >= out["ts_feat_ns"])
    assert woken
    assert health["model_ok"] == 1
    assert health["fallback_total"] == 0
    assert rc == 0, log
    assert not Path(f"/dev/shm/{ns}.inference.sig").exists()


def test_inference_without_model_runs_on_fallback(start, feat_ring, tmp_path, ns):
    inf = start(tmp_path / "absent.onnx")
    eventually(inf.health, timeout_s=30)
    sig = attach_reader(f"{ns}.inference.sig", SIG_V1, 10, from_start=True)
    try:
        feat_ring.publish(make_feats(0, 20))
        out = _collect(sig, 20)
        health = inf.health()
        inf.proc.send_signal(signal.SIGTERM)
        rc, log = inf.finish()
    finally:
        sig.close()

    assert np.all(out["flags"] & FLAG_FALLBACK)
    assert health is not None
    assert (health["model_ok"], health["last_fallback_reason"]) == (0, "no_model")
    assert rc == 0, log


def test_inference_require_model_without_one_exits_78(start, tmp_path):
    inf = start(tmp_path / "absent.onnx", extra="require_model = true")

    rc, log = inf.finish(timeout_s=30)

    assert rc == 78, log


def test_inference_hot_reload_swaps_version_and_refuses_bad_file(start, feat_ring, tmp_path, ns):
    model = write_model(tmp_path / "m.onnx", model_bytes(meta=metadata(version=3)))
    inf = start(model)
    eventually(inf.health, timeout_s=30)
    sig = attach_reader(f"{ns}.inference.sig", SIG_V1, 10, from_start=True)
    try:
        feat_ring.publish(make_feats(0, 10))
        before = _collect(sig, 10)
        write_model(model, model_bytes(meta=metadata(version=4)))
        eventually(lambda: (h := inf.health()) and h["model_version"] == 4, timeout_s=10)
        write_model(model, b"garbage, not a model")
        eventually(lambda: (h := inf.health()) and h["reload_refused_total"] == 1, timeout_s=10)
        feat_ring.publish(make_feats(10, 10))
        after = _collect(sig, 10)
        inf.proc.send_signal(signal.SIGTERM)
        rc, log = inf.finish()
    finally:
        sig.close()

    assert np.all(before["model_version"] == 3)
    assert np.all(after["model_version"] == 4)
    np.testing.assert_array_equal(after["seq"], np.arange(10, 20))
    assert rc == 0, log


def test_inference_hot_reload_refuses_a_model_the_gate_failed(start, feat_ring, tmp_path, ns):
    model = write_model(tmp_path / "m.onnx", model_bytes(meta=metadata(version=3)))
    inf = start(model)
    eventually(inf.health, timeout_s=30)
    sig = attach_reader(f"{ns}.inference.sig", SIG_V1, 10, from_start=True)
    try:
        feat_ring.publish(make_feats(0, 10))
        before = _collect(sig, 10)
        write_model(model, trained_unpromotable_model(version=4))  # bitrader train's output
        health = eventually(
            lambda: (h := inf.health()) and h["reload_not_promotable_total"] == 1 and h,
            timeout_s=10,
        )
        feat_ring.publish(make_feats(10, 10))
        after = _collect(sig, 10)
        inf.proc.send_signal(signal.SIGTERM)
        rc, log = inf.finish()
    finally:
        sig.close()

    assert np.all(before["model_version"] == 3)
    assert np.all(after["model_version"] == 3)  # the old model keeps serving
    assert not np.any(after["flags"] & FLAG_FALLBACK)
    assert (health["model_version"], health["reloads_total"]) == (3, 1)
    assert "not promotable" in str(health["last_reload_error"])
    assert "model refused role=champion" in log
    assert "did not pass the promotion gate" in log
    assert rc == 0, log


def test_inference_require_model_with_only_an_unpromotable_one_exits_78(start, tmp_path):
    model = write_model(tmp_path / "m.onnx", trained_unpromotable_model())
    inf = start(model, extra="require_model = true")

    rc, log = inf.finish(timeout_s=30)

    assert rc == 78, log
    assert "NO MODEL role=champion" in log
    assert "not promotable" in log


def test_inference_unknown_config_field_exits_78(start, tmp_path):
    model = write_model(tmp_path / "m.onnx", model_bytes())
    inf = start(model, extra="bogus_field = 1")

    rc, log = inf.finish(timeout_s=30)

    assert rc == 78, log
