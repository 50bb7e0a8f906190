from __future__ import annotations

import numpy as np
import pytest

from procs.featurecalc import FEATURES, N_FEATURES, compute_batch, feature_index
from procs.ml.synth import synthetic_market
from procs.models.scoring import LinearScorer, check_feature_names, check_scores, fallback_score
from shm.records import FEATURE_SLOTS


def test_fallback_score_is_bounded_finite_and_follows_imbalance():
    books, trades = synthetic_market(seed=9, n_books=2000)
    x = compute_batch(books, trades)["x"]

    s = fallback_score(x)

    assert s.dtype == np.float32
    assert check_scores(s).ok
    assert np.corrcoef(s, x[:, feature_index("imbalance_5")])[0, 1] > 0.5


def test_fallback_score_is_zero_on_degenerate_and_nonfinite_rows():
    x = np.full((3, FEATURE_SLOTS), 50.0, dtype=np.float32)
    x[0, feature_index("book_ok")] = 0.0
    x[1, feature_index("book_ok")] = 1.0
    x[2, :] = np.nan

    s = fallback_score(x)

    assert s[0] == 0.0
    assert s[1] == 1.0  # clipped
    assert s[2] == 0.0


def test_check_scores_counts_nan_inf_and_out_of_range():
    c = check_scores(np.array([0.0, np.nan, np.inf, 1.5, -1.0000001, 0.3]))

    assert (c.n, c.n_nonfinite, c.n_out_of_range, c.ok) == (6, 2, 1, False)
    assert not check_scores(np.array([])).ok


def test_linear_scorer_json_roundtrip_and_probabilities_sum_to_one():
    rng = np.random.default_rng(0)
    sc = LinearScorer(
        feature_names=FEATURES,
        mean=rng.normal(size=N_FEATURES),
        scale=rng.uniform(0.5, 2, size=N_FEATURES),
        coef=rng.normal(size=(3, N_FEATURES)),
        intercept=rng.normal(size=3),
        classes=(-1, 0, 1),
    )
    x = rng.normal(size=(50, FEATURE_SLOTS)).astype(np.float32)

    back = LinearScorer.from_json(sc.to_json())

    np.testing.assert_array_equal(back.score(x), sc.score(x))
    np.testing.assert_allclose(sc.probabilities(x).sum(axis=1), 1.0)
    assert check_scores(sc.score(x)).ok


def test_check_feature_names_refuses_a_different_layout():
    check_feature_names(FEATURES)

    with pytest.raises(ValueError, match="index 1"):
        check_feature_names((FEATURES[0], "other", *FEATURES[2:]))
    with pytest.raises(ValueError):
        check_feature_names(FEATURES[:-1])
