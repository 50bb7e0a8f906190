"""InferenceProc.step on real rings: records, fallback, hot reload, champion/challenger."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import pytest

from procs._config import RuntimeConfig
from procs.featurecalc.engine import N_FEATURES
from procs.models.config import InferenceConfig
from procs.models.scoring import fallback_score
from shm.records import FLAG_FALLBACK, FLAG_STALE
from tests.helpers.inference_feats import make_feats
from tests.helpers.inference_models import metadata, model_bytes, reference_score, write_model


def _unit(i: int) -> np.ndarray:
    w = np.zeros(N_FEATURES, np.float32)
    w[i] = 1.0
    return w


def test_step_publishes_one_signal_per_feature_record_with_stamps(make_rig):
    rig = make_rig()
    feats = make_feats(0, 5)
    feats["flags"][2] = FLAG_STALE
    rig.feat.publish(feats)

    handled, idle = rig.proc.step(), rig.proc.step()
    sig = rig.sig.poll(100)

    assert (handled, idle) == (5, 0)
    assert len(sig) == 5
    for name in ("seq", "ts_event_ns", "ts_recv_ns", "ts_feat_ns", "symbol_id", "mid"):
        np.testing.assert_array_equal(sig[name], feats[name])
    np.testing.assert_array_equal(sig["flags"], [0, 0, FLAG_STALE, 0, 0])
    np.testing.assert_allclose(sig["score"], reference_score(feats["x"]), atol=1e-6)
    assert np.all(sig["model_version"] == 1)
    assert np.all(np.isnan(sig["challenger"]))
    assert np.all(sig["ts_sig_ns"] >= feats["ts_feat_ns"])
    assert rig.waker.notified == 1
    assert rig.metric("bitrader_inference_records_total") == 5
    assert rig.proc.health()["last_seq"] == 4


@pytest.mark.parametrize(
    ("model", "overrides", "reason"),
    [
        (model_bytes(offset=math.nan), {}, "nonfinite"),
        (model_bytes(offset=3.0), {}, "out_of_range"),
        (model_bytes(gain=1.5, bias=5.0), {}, "out_of_range"),
        (model_bytes(), {"latency_budget_s": 1e-9, "latency_strikes": 1}, "latency"),
    ],
    ids=["nan", "offset", "gain", "slow"],
)
def test_step_broken_model_output_falls_back_and_counts(make_rig, model, overrides, reason):
    rig = make_rig(champion=model, batch_max=8, **overrides)
    if reason == "latency":  # the first call late on the wall clock starts the CPU timing
        rig.feat.publish(make_feats(0, 1))
        rig.step_all()
        first = rig.sig.poll(10)
        assert len(first) == 1
        assert not first["flags"][0] & FLAG_FALLBACK  # not judged: its answer is used
    feats = make_feats(0, 8)
    rig.feat.publish(feats)
    rig.feat.publish(make_feats(8, 1))

    rig.step_all()
    sig = rig.sig.poll(100)

    assert len(sig) == 9
    assert np.all(sig["flags"] & FLAG_FALLBACK)
    np.testing.assert_array_equal(sig["score"][:8], fallback_score(feats["x"]))
    assert np.all(sig["model_version"] == 0)
    assert rig.metric("bitrader_inference_fallback_batches_total", reason=reason) == 2
    assert rig.metric("bitrader_inference_fallback_records_total", reason=reason) == 9
    health = rig.proc.health()
    assert health["fallback_total"] == 2
    assert health["last_fallback_reason"] == reason
    assert health["model_ok"] == 1


def test_step_healthy_model_no_fallback_counted(make_rig):
    rig = make_rig()
    rig.feat.publish(make_feats(0, 8))

    rig.step_all()
    sig = rig.sig.poll(100)

    assert not np.any(sig["flags"] & FLAG_FALLBACK)
    assert rig.proc.health()["fallback_total"] == 0
    assert rig.metric("bitrader_inference_fallback_batches_total", reason="nonfinite") == 0


def test_step_without_model_scores_with_fallback(make_rig):
    rig = make_rig(champion=None)
    feats = make_feats(0, 4)
    rig.feat.publish(feats)

    rig.step_all()
    sig = rig.sig.poll(100)

    assert np.all(sig["flags"] & FLAG_FALLBACK)
    np.testing.assert_array_equal(sig["score"], fallback_score(feats["x"]))
    health = rig.proc.health()
    assert (health["model_ok"], health["last_fallback_reason"]) == (0, "no_model")
    assert rig.metric("bitrader_model_ok") == 0


def _reload_tick(rig: Any) -> None:
    # a change is acted on at the second look that sees the same stat
    for _ in range(2):
        rig.clock.advance(2.0)
        rig.proc.step()


def test_reload_new_version_swaps_between_batches_without_dropping(make_rig):
    rig = make_rig()
    rig.feat.publish(make_feats(0, 10))
    rig.step_all()
    v2 = model_bytes(weights=-np.ones(N_FEATURES, np.float32) * 0.1, meta=metadata(version=2))
    write_model(rig.model_path, v2)
    rig.feat.publish(make_feats(10, 3))  # scored by v1 at the first look (not yet settled)

    _reload_tick(rig)
    rig.feat.publish(make_feats(13, 10))
    rig.step_all()
    sig = rig.sig.poll(100)

    np.testing.assert_array_equal(sig["seq"], np.arange(23))
    versions = sig["model_version"]
    assert set(versions[:13]) == {1}
    assert set(versions[13:]) == {2}
    w2 = -np.ones(N_FEATURES) * 0.1
    np.testing.assert_allclose(
        sig["score"][13:], reference_score(make_feats(13, 10)["x"], w2), atol=1e-6
    )
    assert rig.proc.champion is not None
    assert rig.proc.champion.version == 2
    assert rig.metric("bitrader_model_reloads_total", model="champion", result="ok") == 1
    assert rig.metric("bitrader_model_version", model="champion") == 2


@pytest.mark.parametrize(
    "bad",
    [b"not onnx at all", model_bytes(meta=metadata(feature_names=("a", "b")), n_inputs=N_FEATURES)],
    ids=["junk", "metadata"],
)
def test_reload_bad_file_refused_old_model_keeps_running(make_rig, bad):
    rig = make_rig()
    write_model(rig.model_path, bad)

    _reload_tick(rig)
    _reload_tick(rig)
    rig.feat.publish(make_feats(0, 4))
    rig.step_all()
    sig = rig.sig.poll(100)

    assert np.all(sig["model_version"] == 1)
    assert not np.any(sig["flags"] & FLAG_FALLBACK)
    assert rig.metric("bitrader_model_reloads_total", model="champion", result="refused") == 1
    health = rig.proc.health()
    assert health["reload_refused_total"] == 1
    assert "model" in str(health["last_reload_error"])


@pytest.mark.parametrize("promotable", [False, None], ids=["failed-gate", "no-verdict"])
def test_reload_not_promotable_champion_refused_counted_old_keeps_serving(
    make_rig, promotable, caplog
):
    rig = make_rig()
    write_model(rig.model_path, model_bytes(meta=metadata(version=2, promotable=promotable)))

    with caplog.at_level("ERROR", logger="procs.models.reload"):
        _reload_tick(rig)
        _reload_tick(rig)
    rig.feat.publish(make_feats(0, 4))
    rig.step_all()
    sig = rig.sig.poll(100)
    health = rig.proc.health()

    assert np.all(sig["model_version"] == 1)
    assert not np.any(sig["flags"] & FLAG_FALLBACK)
    reloads = "bitrader_model_reloads_total"
    assert rig.metric(reloads, model="champion", result="not_promotable") == 1
    assert rig.metric(reloads, model="champion", result="refused") == 0
    assert rig.metric(reloads, model="champion", result="ok") == 0
    assert (health["reload_not_promotable_total"], health["reload_refused_total"]) == (1, 1)
    assert "not promotable" in str(health["last_reload_error"])
    assert "not promotable" in caplog.text
    assert "the running model stays" in caplog.text


def test_challenger_needs_no_gate_verdict(make_rig):
    rig = make_rig(challenger=model_bytes(meta=metadata(version=9, promotable=False)))

    assert rig.proc.challenger is not None
    assert rig.proc.challenger.version == 9


def test_reload_model_appearing_after_start_replaces_fallback(make_rig):
    rig = make_rig(champion=None)
    write_model(rig.model_path, model_bytes(meta=metadata(version=5)))

    _reload_tick(rig)
    rig.feat.publish(make_feats(0, 3))
    rig.step_all()
    sig = rig.sig.poll(100)

    assert np.all(sig["model_version"] == 5)
    assert not np.any(sig["flags"] & FLAG_FALLBACK)
    assert rig.proc.health()["model_ok"] == 1


def test_reload_not_checked_before_reload_check_s(make_rig):
    rig = make_rig(reload_check_s=10.0)
    write_model(rig.model_path, model_bytes(meta=metadata(version=2)))

    for _ in range(3):
        rig.clock.advance(2.0)
        rig.proc.step()

    assert rig.proc.champion is not None
    assert rig.proc.champion.version == 1


def test_challenger_agreement_ratio_on_constructed_rows(make_rig):
    rig = make_rig(
        champion=model_bytes(weights=_unit(0)),
        challenger=model_bytes(weights=_unit(1), meta=metadata(version=9)),
    )
    feats = make_feats(0, 5)
    feats["x"][:, :2] = [[1, 1], [1, -1], [-1, -1], [-1, 1], [2, 3]]  # rows 0, 2, 4 agree

    rig.feat.publish(feats)
    rig.step_all()
    sig = rig.sig.poll(100)

    np.testing.assert_allclose(sig["challenger"], np.tanh(feats["x"][:, 1]), atol=1e-6)
    assert rig.proc.agreement_ratio() == pytest.approx(0.6)
    assert rig.metric("bitrader_model_challenger_agreement_ratio") == pytest.approx(0.6)
    assert rig.metric("bitrader_model_version", model="challenger") == 9
    assert rig.proc.health()["challenger_agreement_ratio"] == pytest.approx(0.6)


def test_challenger_broken_output_published_as_nan_champion_unaffected(make_rig):
    rig = make_rig(challenger=model_bytes(offset=math.nan))
    rig.feat.publish(make_feats(0, 4))

    rig.step_all()
    sig = rig.sig.poll(100)

    assert np.all(np.isnan(sig["challenger"]))
    assert not np.any(sig["flags"] & FLAG_FALLBACK)
    assert (
        rig.metric("bitrader_inference_challenger_rejected_batches_total", reason="nonfinite") == 1
    )
    assert math.isnan(rig.proc.agreement_ratio())


def test_hit_rate_champion_and_challenger_from_later_mids(make_rig):
    # champion says up on every row, challenger says down; the mid rises 0.01 per record
    rig = make_rig(
        champion=model_bytes(weights=_unit(0)),
        challenger=model_bytes(weights=-_unit(0)),
        hit_horizon_s=0.005,
    )
    feats = make_feats(0, 20, step_ns=1_000_000)
    feats["x"][:, 0] = 1.0

    rig.feat.publish(feats[:7])
    rig.feat.publish(feats[7:])
    rig.step_all()

    # rows 0..14 have data 5 ms ahead of them (row 19 is 19 ms); 15 resolved
    assert rig.proc.hit_rate("champion") == 1.0
    assert rig.proc.hit_rate("challenger") == 0.0
    assert rig.metric("bitrader_model_hit_rate_ratio", model="champion") == 1.0
    assert [rig.proc._card.counted(i) for i in (0, 1)] == [15, 15]
    health = rig.proc.health()
    assert (health["hit_pending_records"], health["hit_pending_dropped_total"]) == (5, 0)


def _cfg(**kw: Any) -> dict[str, Any]:
    return {
        "runtime": {"pub_endpoint": "ipc:///tmp/x/a.pub", "control_endpoint": "ipc:///tmp/x/a.ctl"},
        "feat_ring": "a",
        "sig_ring": "b",
        "features_pub": "ipc:///tmp/x/f.pub",
        "model_path": "m.onnx",
        **kw,
    }


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"sig_capacity_records": 1000}, "power of two"),
        ({"batch_max": 4096, "sig_capacity_records": 1024}, "exceeds"),
        ({"latency_budget_s": 0}, "latency_budget_s"),
        ({"bogus_field": 1}, "bogus_field"),
        ({"features_pub": "tcp://10.1.2.3:5"}, "features_pub"),
    ],
)
def test_config_bad_values_rejected(kw, needle):
    with pytest.raises(msgspec.ValidationError, match=needle):
        msgspec.convert(_cfg(**kw), InferenceConfig)


def test_config_defaults_decode():
    cfg = msgspec.convert(_cfg(), InferenceConfig)

    assert cfg.require_model is False
    assert cfg.challenger_path is None
    assert isinstance(cfg.runtime, RuntimeConfig)


@pytest.mark.parametrize("champion", [None, "broken"], ids=["model", "fallback"])
def test_signal_copies_every_feat_field_and_flag_by_batch_size(make_rig, champion):
    # the copied fields move as two blocks of 8-byte words (procs.models.stage._WORD_BLOCKS):
    # the records equal a field-by-field build, for lone records and batches, stale flag kept
    kw = {} if champion is None else {"champion": model_bytes(offset=math.nan)}
    rig = make_rig(batch_max=8, **kw)
    feats = make_feats(0, 7)
    feats["flags"][[1, 4]] = FLAG_STALE
    feats["symbol_id"] = [3, 1, 4, 1, 5, 9, 2]
    for part in (feats[:1], feats[1:5], feats[5:6], feats[6:]):
        rig.feat.publish(part)
        rig.proc.step()
    sig = rig.sig.poll(100)

    want = np.zeros(7, sig.dtype)
    for name in ("seq", "ts_event_ns", "ts_recv_ns", "ts_feat_ns", "symbol_id", "mid"):
        want[name] = feats[name]
    want["flags"] = feats["flags"] | (0 if champion is None else FLAG_FALLBACK)
    want["score"] = sig["score"]
    want["challenger"] = math.nan
    want["model_version"] = 1 if champion is None else 0
    want["ts_sig_ns"] = sig["ts_sig_ns"]
    assert sig.tobytes() == want.tobytes()


@pytest.mark.parametrize("champion", [b"default", None], ids=["model", "no_model"])
def test_one_record_steps_publish_what_one_batch_does(make_rig, champion):
    """A step of one record takes its own path (``_score_one``); its records are the batch's."""
    rig = make_rig(champion=champion)
    feats = make_feats(0, 6)
    feats["flags"][[1, 4]] = FLAG_STALE
    rig.feat.publish(feats)
    rig.proc.step()
    batch = rig.sig.poll(100)
    for i in range(len(feats)):
        rig.feat.publish(feats[i : i + 1])
        rig.proc.step()
    one = rig.sig.poll(100)

    assert len(batch) == len(one) == 6
    for name in batch.dtype.names:
        if name != "ts_sig_ns":
            np.testing.assert_array_equal(one[name], batch[name], err_msg=name)
    assert np.all(one["ts_sig_ns"] >= batch["ts_sig_ns"][-1])
    fell_back = (one["flags"] & FLAG_FALLBACK) != 0
    assert fell_back.all() if champion is None else not fell_back.any()
