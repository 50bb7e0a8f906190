from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from procs.featurecalc import FEATURES, N_FEATURES
from procs.ml import train as tr
from procs.ml.dataset import build_dataset, capture_features
from procs.ml.train import TrainConfig, card_path, time_split, train_from_captures
from procs.models.scoring import LinearScorer, check_scores


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 10**6), min_size=2, max_size=300),
    st.floats(0.05, 0.9),
    st.integers(0, 2000),
)
def test_time_split_validation_is_strictly_after_train_plus_gap(ts_list, val_frac, gap):
    ts = np.array(ts_list, dtype=np.int64)
    try:
        split = time_split(ts, val_frac, gap)
    except ValueError:
        return

    assert ts[split.train].max() + gap < ts[split.val].min()
    assert np.all(np.diff(ts[split.train]) >= 0)  # time order, never shuffled
    assert np.all(np.diff(ts[split.val]) >= 0)
    assert np.intersect1d(split.train, split.val).size == 0
    assert split.val_start_ns - split.train_end_ns > gap


def test_train_config_rejects_gap_shorter_than_horizon():
    with pytest.raises(ValueError, match="gap_s"):
        TrainConfig(horizon_s=5.0, gap_s=1.0)


def test_dataset_parallel_equals_serial_and_uses_the_engine(synth_captures):
    serial = build_dataset(synth_captures, horizon_s=1.0, deadband_bps=0.5, processes=1)
    parallel = build_dataset(synth_captures, horizon_s=1.0, deadband_bps=0.5, processes=2)
    feat = capture_features(str(synth_captures[0]))

    assert serial.sha256() == parallel.sha256()
    assert len(serial) > 10_000
    first = serial.x[: min(100, len(serial))]
    rows = np.isin(feat["ts_recv_ns"], serial.ts_ns[:100])
    assert np.isin(first, feat["x"][rows, :N_FEATURES]).all()


@pytest.fixture(scope="module")
def trained_twice(synth_captures, tmp_path_factory):
    out = []
    for run in ("a", "b"):
        path = tmp_path_factory.mktemp(run) / "m.onnx"
        card = train_from_captures(synth_captures, path, TrainConfig(seed=5), processes=1)
        out.append((path, card))
    return out


def test_train_same_inputs_and_seed_give_identical_onnx_and_card(trained_twice):
    (pa, ca), (pb, cb) = trained_twice

    assert pa.read_bytes() == pb.read_bytes()
    assert card_path(pa).read_text() == card_path(pb).read_text()
    assert ca["metrics"] == cb["metrics"]


def test_trained_onnx_has_contract_metadata_and_matches_numpy_reference(
    trained_twice, synth_captures
):
    path, card = trained_twice[0]
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    feat = capture_features(str(synth_captures[-1]))
    x = np.ascontiguousarray(feat["x"][:, :N_FEATURES])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    [score] = sess.run([tr.OUTPUT_NAME], {tr.INPUT_NAME: x})
    ref = LinearScorer.from_json(meta[tr.META_LINEAR]).score(x)

    assert [i.name for i in sess.get_inputs()] == ["x"]
    assert sess.get_inputs()[0].shape[1] == N_FEATURES
    assert json.loads(meta[tr.META_FEATURES]) == list(FEATURES)
    assert meta[tr.META_DATA_HASH] == card["data"]["sha256"]
    assert float(meta[tr.META_HORIZON]) == 1.0
    for key in (tr.META_VERSION, tr.META_CREATED, tr.META_DEADBAND, tr.META_SEED):
        assert meta[key]
    assert score.shape == (x.shape[0],)
    assert check_scores(score).ok
    np.testing.assert_allclose(score, ref, atol=2e-5)


def test_trained_model_card_reports_split_and_finds_the_synthetic_signal(trained_twice):
    _, card = trained_twice[0]
    val = card["metrics"]["validation"]

    assert card["split"]["validation_start_utc"] > card["split"]["train_end_utc"]
    assert card["split"]["gap_s"] >= card["label"]["horizon_s"]
    assert val["n"] == card["split"]["validation_rows"]
    assert sum(val["class_balance"].values()) == val["n"]
    assert val["auc_up_vs_down"] > 0.55  # the synthetic market carries a real signal
    assert val["hit_rate"] > 0.52


def test_trained_model_on_a_learnable_market_passes_the_gate(trained_twice):
    path, card = trained_twice[0]
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    gate = card["gate"]

    assert card["promotable"] is True
    assert gate["held_out_rows"] == card["split"]["validation_rows"]
    assert {(c["opponent"], c["metric"]) for c in gate["comparisons"]} == {
        (o, m) for o in ("rule_based", "no_skill") for m in ("auc_up_vs_down", "hit_rate")
    }
    assert meta[tr.META_PROMOTABLE] == "true"


def test_shipped_default_card_is_the_gate_verdict_of_the_shipped_model():
    import hashlib

    from tests.conftest import ROOT

    onnx_path = ROOT / "configs" / "models" / "default.onnx"
    card = json.loads(card_path(onnx_path).read_text())
    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}

    assert card["onnx_sha256"] == hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    assert meta[tr.META_PROMOTABLE] == ("true" if card["gate"]["promotable"] else "false")
    assert card["promotable"] == card["gate"]["promotable"]
    assert meta[tr.META_DATA_HASH] == card["data"]["sha256"]
