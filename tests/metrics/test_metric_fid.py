"""FID against an independent numpy/scipy implementation (scipy.linalg.sqrtm), both covariance conventions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from matbench.metrics.fid import feature_stats, fid, frechet_distance, trace_sqrt_product


def ref_fid(x: np.ndarray, y: np.ndarray, ddof: int) -> float:
    """Textbook FID: numpy.cov and scipy's general matrix square root."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False, ddof=ddof), np.cov(y, rowvar=False, ddof=ddof)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def synth(n: int, d: int, shift: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = np.eye(d) + 0.3 * rng.standard_normal((d, d)) / np.sqrt(d)
    return (rng.standard_normal((n, d)) @ mix + shift).astype(np.float32)  # float32 like real features


@pytest.mark.parametrize("convention,ddof", [("mat", 0), ("torch-fidelity", 1)])
def test_fid_matches_scipy_reference(convention: str, ddof: int) -> None:
    x, y = synth(300, 32, 0.0, 1), synth(250, 32, 0.2, 2)
    ours = fid(x, y, convention=convention)
    ref = ref_fid(x.astype(np.float64), y.astype(np.float64), ddof)
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-9)
    assert ours > 0.5  # the shift of 0.2 in 32 dims alone contributes 1.28


def test_conventions_differ_by_the_covariance_scale() -> None:
    x, y = synth(20, 8, 0.0, 3), synth(20, 8, 0.5, 4)
    assert fid(x, y, "mat") != pytest.approx(fid(x, y, "torch-fidelity"), rel=1e-3)
    mu, s_mat = feature_stats(x, "mat")
    _, s_tf = feature_stats(x, "torch-fidelity")
    np.testing.assert_allclose(s_mat * 20 / 19, s_tf, rtol=1e-12)


def test_mat_convention_equals_mat_raw_moment_formula() -> None:
    # MAT's FeatureStats: float64 raw sums, cov = sum(x x^T)/N - mu mu^T.
    x = synth(50, 6, 1.0, 5)
    x64 = x.astype(np.float64)
    mean = x64.sum(0) / 50
    cov = x64.T @ x64 / 50 - np.outer(mean, mean)
    mu, sigma = feature_stats(x, "mat")
    np.testing.assert_allclose(mu, mean, rtol=1e-12)
    np.testing.assert_allclose(sigma, cov, rtol=1e-9, atol=1e-12)


def test_torch_fidelity_convention_equals_torch_fidelity() -> None:
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    x, y = synth(120, 16, 0.0, 6), synth(90, 16, 0.3, 7)
    st = [fid_features_to_statistics(torch.from_numpy(a.astype(np.float64))) for a in (x, y)]
    ref = fid_statistics_to_metric(st[0], st[1], verbose=False)["frechet_inception_distance"]
    assert fid(x, y, "torch-fidelity") == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("convention,ddof", [("mat", 0), ("torch-fidelity", 1)])
def test_rank_deficient_n_smaller_than_d(convention: str, ddof: int) -> None:
    x, y = synth(12, 40, 0.0, 8), synth(15, 40, 0.1, 9)  # both covariances singular
    ours = fid(x, y, convention)
    ref = ref_fid(x.astype(np.float64), y.astype(np.float64), ddof)
    assert np.isfinite(ours)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_identical_sets_give_zero() -> None:
    x = synth(100, 10, 0.0, 10)
    assert abs(fid(x, x)) < 1e-8


def test_one_dimensional_closed_form() -> None:
    # D = 1: FID = (m1-m2)^2 + (s1 - s2)^2 with standard deviations s.
    d = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]]))
    assert d == pytest.approx(4.0 + 1.0, abs=1e-12)


def test_trace_term_matches_sqrtm_at_2048() -> None:
    rng = np.random.default_rng(11)
    d = 2048
    a = rng.standard_normal((2100, d)) * rng.uniform(0.1, 2.0, d)
    b = rng.standard_normal((2100, d)) @ (np.eye(d) + 0.02 * rng.standard_normal((d, d)))
    _, s1 = feature_stats(a)
    _, s2 = feature_stats(b)
    ours = trace_sqrt_product(s1, s2)
    chol = trace_sqrt_product(s1, s2, method="cholesky")
    ref = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert abs(ours - ref) / abs(ref) < 1e-6
    assert abs(chol - ref) / abs(ref) < 1e-6


def test_cholesky_falls_back_when_singular() -> None:
    x, y = synth(10, 30, 0.0, 17), synth(50, 30, 0.0, 18)
    _, s1 = feature_stats(x)  # rank 9 < 30: Cholesky fails
    _, s2 = feature_stats(y)
    ref = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2, "cholesky") == pytest.approx(ref, rel=1e-6)
    assert trace_sqrt_product(s2, s1, "cholesky") == pytest.approx(ref, rel=1e-6)


def test_bad_inputs() -> None:
    x = synth(10, 4, 0.0, 12)
    with pytest.raises(ValueError, match="dimensions differ"):
        fid(x, synth(10, 5, 0.0, 13))
    with pytest.raises(ValueError, match="at least 2"):
        fid(x[:1], x)
    with pytest.raises(ValueError, match="convention"):
        fid(x, x, convention="tf")
    with pytest.raises(ValueError, match="NaN"):
        fid(np.full((3, 4), np.nan), x)


@pytest.mark.parametrize("convention", ["mat", "torch-fidelity"])
def test_resampler_equals_fid_of_resampled_rows(convention: str) -> None:
    from matbench.metrics.fid import FIDResampler

    x, y = synth(150, 12, 0.0, 14), synth(150, 12, 0.3, 15)
    small = FIDResampler(x[:8], y[:8], convention)  # singular covariances: the eigh fallback
    assert small(np.arange(8)) == pytest.approx(fid(x[:8], y[:8], convention), rel=1e-6)
    idx = np.random.default_rng(16).integers(0, 150, 150)
    both = FIDResampler(x, y, convention)
    assert both(idx) == pytest.approx(fid(x[idx], y[idx], convention), rel=1e-9)
    assert both(np.arange(150)) == pytest.approx(fid(x, y, convention), rel=1e-9)
    fake_only = FIDResampler(x, y, convention, resample="fake")
    assert fake_only(idx) == pytest.approx(fid(x, y[idx], convention), rel=1e-9)


def test_chunked_statistics_equal_direct(monkeypatch) -> None:
    import matbench.metrics.fd as F

    x = synth(100, 7, 0.5, 19)
    direct = feature_stats(x, "torch-fidelity")
    monkeypatch.setattr(F, "_CHUNK", 16)  # 7 chunks, ragged last one
    chunked = feature_stats(x, "torch-fidelity")
    np.testing.assert_allclose(chunked[0], direct[0], rtol=1e-12)
    np.testing.assert_allclose(chunked[1], direct[1], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(chunked[1], np.cov(x.astype(np.float64), rowvar=False), rtol=1e-9, atol=1e-12)
