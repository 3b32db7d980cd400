"""Feature-space metrics as the evaluator computes them: resampling statistics equal the metric functions on
the full sample, every value names its extractor, weights and resize, and the names map to extractors."""

from __future__ import annotations

import numpy as np
import pytest

from matbench.metrics import featspace as FS
from matbench.metrics.cmmd import cmmd
from matbench.metrics.fd import fd, fd_statistic

IDENT = {"extractor": "clip-vitb32", "weights_sha256": "smoke-x", "resize": "legacy-tf", "smoke": True}


def _pair(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, d))
    return real, real + rng.normal(scale=0.5, size=(n, d)) + 0.2


def test_names_map_to_extractors():
    assert FS.FEATURE_METRICS["fd_dinov2"].extractor == "dinov2-vitl14"
    assert FS.FEATURE_METRICS["cmmd"].extractor == "clip-vitl14-336"
    assert FS.FEATURE_METRICS["clip_fid"].extractor == "clip-vitb32"
    assert FS.FEATURE_METRICS["pr_dinov2"].outputs == ("precision_dinov2", "recall_dinov2")
    assert FS.FEATURE_METRICS["dc"].outputs == ("density", "coverage")


@pytest.mark.parametrize("n,d", [(12, 30), (40, 6)])
@pytest.mark.parametrize("convention", ["mat", "torch-fidelity"])
def test_fd_statistic_equals_fd_on_full_and_resampled_sets(n, d, convention):
    real, fake = _pair(n, d)
    stat = fd_statistic(real, fake, convention)
    # N < D: singular covariances, where the eigendecomposition of fd() carries ~1e-7 relative noise
    assert stat(np.arange(n)) == pytest.approx(fd(real, fake, convention), rel=1e-6)
    idx = np.random.default_rng(1).integers(0, n, n)
    assert stat(idx) == pytest.approx(fd(real[idx], fake[idx], convention), rel=1e-6, abs=1e-8)


def test_cmmd_statistic_equals_cmmd_and_counts_duplicates_as_distinct_samples():
    real, fake = _pair(15, 5)
    stat = FS.cmmd_statistic(real, fake)
    assert stat(np.arange(15)) == pytest.approx(cmmd(real, fake), rel=1e-9)
    idx = np.random.default_rng(2).integers(0, 15, 15)
    # a resample is a sample with repeated rows: the unbiased formula on the materialised arrays
    assert stat(idx) == pytest.approx(cmmd(real[idx], fake[idx]), rel=1e-9)


def test_compute_records_identity_and_intervals():
    real, fake = _pair(30, 8)
    for name in ("clip_fid", "cmmd", "dc_clipb32", "pr_clipb32", "kid_clipb32", "ids_clipb32"):
        fm = FS.FEATURE_METRICS[name]
        out = FS.compute(fm, real, fake, IDENT, n_bootstrap=20, seed=0, kid_subset_size=10, kid_subsets=5)
        assert set(out) == set(fm.outputs), name
        for key, mv in out.items():
            assert mv.extra["extractor"] == "clip-vitb32" and mv.extra["resize"] == "legacy-tf", key
            assert mv.n == 30 and mv.ci_low is not None and mv.ci_low <= mv.ci_high, key


@pytest.mark.parametrize("n,d", [(10, 25), (60, 5)])
@pytest.mark.parametrize("convention", ["mat", "torch-fidelity"])
def test_fd_to_reference_statistic_equals_fd_to_stats(n, d, convention):
    from matbench.metrics.fd import fd_to_reference_statistic, fd_to_stats, feature_stats

    real, fake = _pair(max(n, d + 5), d, seed=3)
    mu, sigma = feature_stats(real, convention)
    fake = fake[:n]
    stat = fd_to_reference_statistic(mu, sigma, fake, convention)
    assert stat(np.arange(n)) == pytest.approx(fd_to_stats(fake, mu, sigma, convention), rel=1e-6)
    idx = np.random.default_rng(4).integers(0, n, n)
    assert stat(idx) == pytest.approx(fd_to_stats(fake[idx], mu, sigma, convention), rel=1e-6)
