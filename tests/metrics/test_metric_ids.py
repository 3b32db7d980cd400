"""P-IDS / U-IDS against sklearn's LinearSVC used directly, and hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import LinearSVC

from matbench.metrics.ids import pids_from_scores, pids_uids, uids_from_scores


def reference(real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    """CoModGAN IDS written out: fit on all 2N, real=1, fake=0; U = 1 - train accuracy; P = mean 1[f(fake)>f(real)]."""
    x = np.concatenate([real, fake])
    y = np.array([1] * len(real) + [0] * len(fake))
    svm = LinearSVC(dual=False).fit(x, y)
    u = 1.0 - svm.score(x, y)
    p = float(np.mean(svm.decision_function(fake) > svm.decision_function(real)))
    return p, u


def test_matches_sklearn_directly() -> None:
    rng = np.random.default_rng(0)
    real = rng.standard_normal((300, 24)).astype(np.float32)
    fake = (real + 0.6 * rng.standard_normal((300, 24)) + 0.1).astype(np.float32)  # paired, slightly off
    out = pids_uids(real, fake)
    p, u = reference(real, fake)
    assert out["pids"] == pytest.approx(p, abs=1e-12)
    assert out["uids"] == pytest.approx(u, abs=1e-12)
    assert 0.0 < out["pids"] < 0.5 and 0.0 < out["uids"] < 0.5
    assert out["converged"]
    # the returned SVM is the fitted one: its scores reproduce the numbers
    np.testing.assert_allclose(out["svm"].decision_function(fake), out["fake_scores"])


def test_well_separated_clusters_are_perfectly_discriminated() -> None:
    rng = np.random.default_rng(1)
    real = rng.standard_normal((100, 8)) + 10.0
    fake = rng.standard_normal((100, 8)) - 10.0
    out = pids_uids(real, fake)
    assert out["uids"] == 0.0
    assert out["pids"] == 0.0


def test_identical_features_give_half_uids_and_zero_pids() -> None:
    # Each pair has equal scores: exactly one of the two is misclassified -> U-IDS = 1/2 exactly;
    # the strict inequality makes P-IDS 0.
    x = np.random.default_rng(2).standard_normal((80, 6))
    out = pids_uids(x, x.copy())
    assert out["uids"] == 0.5
    assert out["pids"] == 0.0


def test_same_distribution_is_near_chance() -> None:
    rng = np.random.default_rng(3)
    real = rng.standard_normal((1000, 4))
    fake = rng.standard_normal((1000, 4))
    out = pids_uids(real, fake)
    assert out["uids"] == pytest.approx(0.5, abs=0.05)
    assert out["pids"] == pytest.approx(0.5, abs=0.05)


def test_score_functions_by_hand() -> None:
    real = np.array([1.0, -1.0, 0.5, 0.0])
    fake = np.array([2.0, -2.0, 0.5, 0.0])
    assert pids_from_scores(real, fake) == 0.25  # only 2 > 1; ties do not count
    # wrong: real <= 0 -> -1.0 and 0.0; fake > 0 -> 2.0 and 0.5  => 4 of 8
    assert uids_from_scores(real, fake) == 0.5


def test_uids_from_scores_matches_svm_predict() -> None:
    rng = np.random.default_rng(4)
    real, fake = rng.standard_normal((50, 3)) + 0.3, rng.standard_normal((50, 3))
    out = pids_uids(real, fake)
    svm = out["svm"]
    acc = (np.sum(svm.predict(real) == 1) + np.sum(svm.predict(fake) == 0)) / 100
    assert out["uids"] == pytest.approx(1 - acc, abs=1e-12)


def test_rejects_unpaired_inputs() -> None:
    with pytest.raises(ValueError, match="paired"):
        pids_uids(np.zeros((5, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        pids_uids(np.zeros((1, 3)), np.zeros((1, 3)))
