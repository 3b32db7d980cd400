"""KID against the unbiased MMD^2 formula with the cubic polynomial kernel (Bińkowski et al. 2018)."""

from __future__ import annotations

import numpy as np
import pytest

from matbench.metrics.kid import kid


def unbiased_mmd2_poly(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def test_single_full_subset_equals_formula() -> None:
    rng = np.random.default_rng(0)
    real = rng.standard_normal((64, 10))
    fake = rng.standard_normal((64, 10)) * 1.3 + 0.2
    out = kid(real, fake, subsets=1, subset_size=64)
    assert out["kid_mean"] == pytest.approx(unbiased_mmd2_poly(real, fake), rel=1e-10)
    assert out["kid_std"] == 0.0
    assert out["kid_mean"] > 0.05


def test_subset_size_is_clipped_and_seed_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    real, fake = rng.standard_normal((40, 6)), rng.standard_normal((70, 6)) + 0.5
    a = kid(real, fake, subsets=5, subset_size=1000, seed=3)
    b = kid(real, fake, subsets=5, subset_size=1000, seed=3)
    c = kid(real, fake, subsets=5, subset_size=1000, seed=4)
    assert a == b
    assert a["subset_size"] == 40
    assert a["kid_mean"] != c["kid_mean"]
    assert a["kid_std"] > 0


def test_same_distribution_is_near_zero() -> None:
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((300, 8)), rng.standard_normal((300, 8))
    shifted = rng.standard_normal((300, 8)) + 1.0
    same = kid(real, fake, subsets=10, subset_size=100)["kid_mean"]
    diff = kid(real, shifted, subsets=10, subset_size=100)["kid_mean"]
    assert abs(same) < 0.05 < diff


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="equal D"):
        kid(np.zeros((5, 2)), np.zeros((5, 3)))
