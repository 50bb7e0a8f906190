"""The promotion gate: beats the rule-based scorer and the no-skill baseline, or not promotable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from procs.ml.gate import GateConfig, evaluate, no_skill_score
from procs.ml.train import META_GATE, META_PROMOTABLE, TrainConfig
from tests.helpers.inference_models import trained_unpromotable_model

N = 20_000


def _labels(seed: int, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = np.sign(signal + rng.normal(0.0, 1.0, n)).astype(np.int8)
    y[rng.random(n) < 0.2] = 0
    return signal.astype(np.float32), y


def _by(verdict: dict, opponent: str, metric: str) -> dict:
    [c] = [c for c in verdict["comparisons"] if c["opponent"] == opponent and c["metric"] == metric]
    return c


def test_model_with_real_edge_beats_both_and_is_promotable():
    signal, y = _labels(1)
    weak_rule = (0.3 * signal + np.random.default_rng(2).normal(size=N)).astype(np.float32)

    v = evaluate(np.tanh(signal), np.tanh(weak_rule), y, y)

    assert v["promotable"] is True
    assert v["reasons"] == []
    assert len(v["comparisons"]) == 4
    assert all(c["beats"] and c["blocks_used"] == 10 for c in v["comparisons"])
    assert _by(v, "no_skill", "auc_up_vs_down")["baseline"] == pytest.approx(0.5)


def test_model_no_better_than_rule_is_not_promotable_and_says_why():
    signal, y = _labels(3)

    v = evaluate(np.tanh(signal), np.tanh(signal), y, y)  # exactly the rule-based scores

    assert v["promotable"] is False
    assert not _by(v, "rule_based", "auc_up_vs_down")["beats"]
    assert not _by(v, "rule_based", "hit_rate")["beats"]
    assert _by(v, "no_skill", "auc_up_vs_down")["beats"]  # it does beat no skill
    assert any("does not beat rule_based" in r for r in v["reasons"])


def test_noise_model_beats_neither():
    _, y = _labels(4)
    noise = np.random.default_rng(5).normal(size=N).astype(np.float32)
    rule = np.zeros(N, np.float32)

    v = evaluate(np.tanh(noise), rule, y, y)

    assert v["promotable"] is False
    assert not _by(v, "no_skill", "auc_up_vs_down")["beats"]
    assert not _by(v, "no_skill", "hit_rate")["beats"]


def test_lead_in_a_single_block_is_not_enough():
    # ahead overall, but all of it from one lucky stretch: the block bound stays below zero
    signal, y = _labels(6)
    noise = np.random.default_rng(7).normal(size=N).astype(np.float32)
    model = noise.copy()
    model[: N // 10] = signal[: N // 10]

    v = evaluate(np.tanh(model), np.zeros(N, np.float32), y, y)
    auc = _by(v, "no_skill", "auc_up_vs_down")

    assert auc["lead"] > 0
    assert auc["block_lead_lower_bound"] < 0
    assert v["promotable"] is False


def test_no_skill_calls_the_training_majority_direction():
    y_train = np.array([-1, -1, 0, 1], np.int8)

    score, direction = no_skill_score(y_train, 3)

    assert direction == -1
    assert score.tolist() == [-1.0, -1.0, -1.0]


def test_too_little_held_out_data_is_not_promotable():
    y = np.array([1, -1, 1], np.int8)
    s = np.array([0.5, -0.5, 0.5], np.float32)

    v = evaluate(s, np.zeros(3, np.float32), y, y)

    assert v["promotable"] is False
    assert "3 held-out moves, fewer than 1000" in v["reasons"]
    assert _by(v, "rule_based", "auc_up_vs_down")["block_lead_lower_bound"] is None


def test_gate_config_rejects_nonsense():
    with pytest.raises(ValueError, match="blocks"):
        GateConfig(blocks=2)
    with pytest.raises(ValueError, match="z"):
        GateConfig(z=-1.0)
    with pytest.raises(ValueError, match="blocks"):
        TrainConfig(gate_blocks=1)


def test_train_on_noise_writes_model_marked_not_promotable():
    import onnx

    data = trained_unpromotable_model(version=4)

    meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    assert meta[META_PROMOTABLE] == "false"
    gate = json.loads(meta[META_GATE])
    assert gate["promotable"] is False
    assert any("does not beat" in r for r in gate["reasons"])
