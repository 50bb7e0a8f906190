"""OnnxModel: metadata checks, IOBinding against session.run, buffers and batch sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from procs.featurecalc.engine import FEATURES, N_FEATURES
from procs.models.errors import ModelLoadError, ModelMetadataError
from procs.models.model import OnnxModel
from tests.helpers.inference_models import metadata, model_bytes, reference_score, write_model


def _rows(n: int, seed: int = 1, cols: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, cols)).astype(np.float32)


def _load(meta: dict[str, str], tmp_path: Path) -> OnnxModel:
    path = write_model(tmp_path / "m.onnx", model_bytes(meta=meta))
    return OnnxModel.load(path, FEATURES, batch_max=8)


def test_load_valid_model_reads_metadata(tmp_path):
    path = write_model(tmp_path / "m.onnx", model_bytes(meta=metadata(version=7)))

    model = OnnxModel.load(path, FEATURES, batch_max=8)

    assert model.version == 7
    assert model.info.feature_names == FEATURES
    assert model.info.horizon_s == 1.0
    assert len(model.info.file_sha256) == 64


@pytest.mark.parametrize(
    ("names", "needle"),
    [
        ((FEATURES[1], FEATURES[0], *FEATURES[2:]), "index 0: model has 'imbalance_1'"),
        (FEATURES[:-1], "missing from the model: ['book_ok']"),
        ((*FEATURES, "extra_feature"), "not in the engine: ['extra_feature']"),
        ((*FEATURES[:3], "bogus", *FEATURES[4:]), "index 3: model has 'bogus'"),
    ],
    ids=["wrong_order", "missing_name", "extra_name", "renamed"],
)
def test_load_feature_names_differ_refused_naming_first_difference(tmp_path, names, needle):
    with pytest.raises(ModelMetadataError) as err:
        _load(metadata(feature_names=names), tmp_path)

    assert needle in str(err.value)
    assert "feature_names do not match" in str(err.value)


def test_load_wrong_order_says_same_names(tmp_path):
    names = (FEATURES[1], FEATURES[0], *FEATURES[2:])

    with pytest.raises(ModelMetadataError, match="same names in a different order"):
        _load(metadata(feature_names=names), tmp_path)


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ({"model_version": "1", "training_data_sha256": "0" * 64}, "no 'feature_names'"),
        ({**metadata(), "feature_names": "not json"}, "is not JSON"),
        (metadata(version="v2"), "'model_version' must be an integer"),
        (metadata(version=2**32), "'model_version' must be an integer"),
        (metadata(data_hash="abc"), "'training_data_sha256' must be 64"),
    ],
    ids=["no_names", "bad_json", "bad_version", "version_too_big", "bad_hash"],
)
def test_load_bad_metadata_refused(tmp_path, meta, needle):
    with pytest.raises(ModelMetadataError, match=needle):
        _load(meta, tmp_path)


def test_load_not_onnx_refused(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"this is not a model")

    with pytest.raises(ModelLoadError, match="onnxruntime cannot load it"):
        OnnxModel.load(path, FEATURES)


def test_load_missing_file_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot read"):
        OnnxModel.load(tmp_path / "absent.onnx", FEATURES)


def test_load_wrong_input_width_refused(tmp_path):
    path = write_model(tmp_path / "m.onnx", model_bytes(n_inputs=N_FEATURES + 1))

    with pytest.raises(ModelLoadError, match="must be float"):
        OnnxModel.load(path, FEATURES)


@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_score_iobinding_equals_session_run(tmp_path, n):
    path = write_model(tmp_path / "m.onnx", model_bytes())
    model = OnnxModel.load(path, FEATURES, batch_max=64)
    x = _rows(n, seed=n)

    got = model.score(x).copy()

    np.testing.assert_array_equal(got, model.run_session(x))
    np.testing.assert_allclose(got, reference_score(x), atol=1e-6)


def test_score_sklearn_pipeline_iobinding_equals_session_run():
    from tests.helpers.inference_models import sklearn_model

    model = OnnxModel.from_bytes(sklearn_model(), FEATURES, batch_max=16)
    x = _rows(16)

    got = model.score(x).copy()

    np.testing.assert_array_equal(got, model.run_session(x))
    assert np.all(np.abs(got) <= 1.0)


def test_score_changing_batch_sizes_each_row_scored_alone_equal(tmp_path):
    path = write_model(tmp_path / "m.onnx", model_bytes())
    model = OnnxModel.load(path, FEATURES, batch_max=32)
    x = _rows(32)

    big = model.score(x).copy()
    singles = np.array([model.score(x[i : i + 1])[0] for i in range(32)])
    again = model.score(x[:5]).copy()

    np.testing.assert_allclose(singles, big, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(again, big[:5])


def test_score_strided_feature_view_accepted(tmp_path):
    from shm.records import FEAT_V1

    path = write_model(tmp_path / "m.onnx", model_bytes())
    model = OnnxModel.load(path, FEATURES, batch_max=8)
    recs = np.zeros(4, FEAT_V1)
    recs["x"] = _rows(4)

    got = model.score(recs["x"]).copy()

    np.testing.assert_array_equal(got, model.run_session(np.ascontiguousarray(recs["x"])))


def test_score_batch_over_batch_max_raises(tmp_path):
    path = write_model(tmp_path / "m.onnx", model_bytes())
    model = OnnxModel.load(path, FEATURES, batch_max=4)

    with pytest.raises(ValueError, match=r"batch of 5 rows"):
        model.score(_rows(5))


def test_load_fixed_batch_size_refused(tmp_path):
    path = write_model(tmp_path / "m.onnx", model_bytes(batch_dim=1))

    with pytest.raises(ModelLoadError, match=r"cannot score batches of 1\.\.8"):
        OnnxModel.load(path, FEATURES, batch_max=8)


@pytest.mark.parametrize(
    ("promotable", "needle"),
    [(False, "did not pass the promotion gate: auc_up_vs_down"), (None, "no promotion-gate")],
    ids=["failed-gate", "no-verdict"],
)
def test_require_promotable_refuses_models_without_a_passing_verdict(promotable, needle):
    from procs.models.errors import ModelNotPromotableError

    data = model_bytes(meta=metadata(promotable=promotable))

    with pytest.raises(ModelNotPromotableError, match=needle):
        OnnxModel.from_bytes(data, FEATURES, batch_max=8, require_promotable=True)
    shadow = OnnxModel.from_bytes(data, FEATURES, batch_max=8)  # a challenger may be anything
    assert shadow.info.promotable is promotable


def test_promotable_metadata_must_be_true_or_false():
    with pytest.raises(ModelMetadataError, match="'promotable' must be"):
        OnnxModel.from_bytes(
            model_bytes(meta={**metadata(), "promotable": "yes"}), FEATURES, batch_max=8
        )
