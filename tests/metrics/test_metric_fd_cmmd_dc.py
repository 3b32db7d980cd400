"""FD, CMMD and density/coverage against independent references: scipy's sqrtm, the CMMD paper's formula
written out as loops, and a brute-force loop over Naeem et al.'s definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from matbench.metrics.cmmd import cmmd
from matbench.metrics.density_coverage import density_coverage
from matbench.metrics.fd import fd, fd_to_stats, feature_stats


def _feats(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3 + shift


@pytest.mark.parametrize("convention,ddof", [("mat", 0), ("torch-fidelity", 1)])
def test_fd_equals_scipy_sqrtm(convention, ddof):
    a, b = _feats(80, 12, 0), _feats(60, 12, 1, shift=0.5)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False, ddof=ddof), np.cov(b, rowvar=False, ddof=ddof)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert fd(a, b, convention) == pytest.approx(ref, rel=1e-9)
    assert fd_to_stats(b, mu1, s1, convention) == pytest.approx(ref, rel=1e-9)
    # the two conventions give different numbers at this N
    other = "mat" if convention == "torch-fidelity" else "torch-fidelity"
    assert abs(fd(a, b, other) - ref) > 1e-6
    mu, s = feature_stats(a, convention)
    np.testing.assert_allclose(s, s1, rtol=1e-12)


def _cmmd_loops(x: np.ndarray, y: np.ndarray, unbiased: bool) -> float:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    k = lambda u, v: math.exp(-float(((u - v) ** 2).sum()) / (2 * 10.0 ** 2))  # noqa: E731
    m, n = len(x), len(y)
    if unbiased:
        sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    else:
        sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m)) / (m * m)
        syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n)) / (n * n)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return 1000.0 * (sxx + syy - 2 * sxy)


@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_cmmd_equals_paper_formula(estimator):
    x, y = _feats(23, 8, 2), _feats(17, 8, 3, shift=0.4)
    ref = _cmmd_loops(x, y, estimator == "unbiased")
    assert cmmd(x, y, estimator=estimator, block=5) == pytest.approx(ref, rel=1e-9, abs=1e-12)
    # scale invariance: the embeddings are L2-normalised first
    assert cmmd(3 * x, 0.5 * y, estimator=estimator) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_cmmd_unbiased_is_near_zero_for_one_distribution_and_rejects_bad_input():
    rng = np.random.default_rng(4)
    same = rng.normal(size=(400, 6)) + 1.0
    other = rng.normal(size=(400, 6)) + 1.0
    assert abs(cmmd(same, other)) < 0.05 * cmmd(same, other + 2.0)
    with pytest.raises(ValueError, match="zero norm"):
        cmmd(np.zeros((3, 4)), other[:3, :4])
    with pytest.raises(ValueError, match="estimator"):
        cmmd(same, other, estimator="v")


def _dc_loops(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    n, m = len(real), len(fake)
    dist = lambda a, b: float(np.sqrt(((a - b) ** 2).sum()))  # noqa: E731
    radii = []
    for i in range(n):
        ds = sorted(dist(real[i], real[j]) for j in range(n) if j != i)
        radii.append(ds[k - 1])
    dens = sum(1 for j in range(m) for i in range(n) if dist(fake[j], real[i]) < radii[i]) / (k * m)
    cov = sum(1 for i in range(n) if min(dist(fake[j], real[i]) for j in range(m)) < radii[i]) / n
    return dens, cov


@pytest.mark.parametrize("k", [1, 3, 5])
def test_density_coverage_equal_brute_force(k):
    real, fake = _feats(40, 5, 5), _feats(33, 5, 6, shift=0.3)
    dens, cov = _dc_loops(real, fake, k)
    out = density_coverage(real, fake, k=k, batch=7)
    assert out["density"] == pytest.approx(dens, rel=1e-12)
    assert out["coverage"] == pytest.approx(cov, rel=1e-12)
    assert 0 < out["coverage"] <= 1


def test_density_coverage_needs_more_than_k_reals():
    with pytest.raises(ValueError, match="k=5"):
        density_coverage(np.ones((5, 2)), np.ones((5, 2)))
