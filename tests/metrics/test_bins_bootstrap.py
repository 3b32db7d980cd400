"""Hole-ratio bins, bootstrap confidence intervals, and the metric registry."""

from __future__ import annotations

import numpy as np
import pytest

from matbench.metrics.bins import BIN_EDGES, assign_bins, bin_label, hole_ratio
from matbench.metrics.bootstrap import bootstrap_ci, mean_ci
from matbench.metrics.ids import pids_from_scores

# ---- bins ----


def test_bin_edges_and_edge_handling() -> None:
    assert BIN_EDGES == tuple(i / 10 for i in range(11))
    r = np.array([0.0, 0.0999, 0.1, 0.15, 0.5, 0.8999, 0.9, 0.999, 1.0])
    assert assign_bins(r).tolist() == [0, 0, 1, 1, 5, 8, 9, 9, 9]


def test_bins_from_pixel_counts() -> None:
    # 512x512 masks: exactly 10 % of 262144 pixels is not an integer, so 26214 px < 10 % and 26215 px > 10 %.
    hole = np.zeros((3, 1, 512, 512), bool)
    hole[0].flat[:26214] = True
    hole[1].flat[:26215] = True
    hole[2] = True
    ratios = hole_ratio(hole)
    assert ratios[2] == 1.0
    assert assign_bins(ratios).tolist() == [0, 1, 9]


def test_bin_labels_and_errors() -> None:
    assert bin_label(0) == "0-10%" and bin_label(1) == "10-20%" and bin_label(9) == "90-100%"
    assert bin_label(1, (0.0, 0.25, 1.0)) == "25-100%"
    with pytest.raises(ValueError, match="outside"):
        assign_bins(np.array([-0.01]))
    with pytest.raises(ValueError, match="outside"):
        assign_bins(np.array([np.nan]))
    with pytest.raises(ValueError, match="increasing"):
        assign_bins(np.array([0.5]), edges=(0.0, 0.5, 0.5))
    with pytest.raises(ValueError, match="range"):
        bin_label(10)


# ---- bootstrap ----


def test_ci_covers_true_mean_and_has_normal_width() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(3.0, 2.0, size=400)
    lo, hi = mean_ci(v, n_resamples=2000, seed=1)
    assert lo < 3.0 < hi
    half = 1.96 * v.std(ddof=1) / np.sqrt(v.size)
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.15)


def test_coverage_over_repeated_experiments() -> None:
    rng = np.random.default_rng(5)
    hits = 0
    for s in range(60):
        v = rng.exponential(1.0, size=80)  # skewed, true mean 1
        lo, hi = mean_ci(v, n_resamples=400, seed=s)
        hits += lo <= 1.0 <= hi
    assert 0.8 <= hits / 60 <= 1.0


def test_deterministic_per_seed() -> None:
    v = np.random.default_rng(2).normal(size=50)
    assert mean_ci(v, 300, 7) == mean_ci(v, 300, 7)
    assert mean_ci(v, 300, 7) != mean_ci(v, 300, 8)
    stat = lambda idx: float(np.median(v[idx]))  # noqa: E731
    assert bootstrap_ci(stat, 50, 200, seed=3) == bootstrap_ci(stat, 50, 200, seed=3)


def test_mean_ci_equals_generic_bootstrap_of_the_mean() -> None:
    v = np.random.default_rng(3).normal(size=120)
    assert mean_ci(v, 500, seed=4) == pytest.approx(bootstrap_ci(lambda i: v[i].mean(), 120, 500, seed=4),
                                                    abs=1e-12)


def test_paired_resampling_for_pids() -> None:
    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=300), rng.normal(size=300) - 0.5
    point = pids_from_scores(real, fake)
    lo, hi = bootstrap_ci(lambda i: pids_from_scores(real[i], fake[i]), 300, 500, seed=0)
    assert lo < point < hi and 0.0 < lo and hi < 0.5


def test_bootstrap_errors_and_nonfinite() -> None:
    with pytest.raises(ValueError):
        bootstrap_ci(lambda i: 0.0, 0)
    with pytest.raises(ValueError):
        mean_ci(np.ones(3), n_resamples=0)
    assert all(np.isnan(x) for x in bootstrap_ci(lambda i: float("inf"), 5, 10))


def test_bias_corrected_interval_contains_the_fid_point_estimate() -> None:
    from matbench.metrics.fid import FIDResampler, fid

    rng = np.random.default_rng(9)
    real = np.abs(rng.standard_normal((300, 24)))
    fake = np.abs(rng.standard_normal((300, 24))) * 1.1
    point = fid(real, fake)
    stat = FIDResampler(real, fake)
    lo_p, hi_p = bootstrap_ci(stat, 300, 100, seed=0)
    lo_b, hi_b = bootstrap_ci(stat, 300, 100, seed=0, method="bias-corrected")
    assert lo_p > point  # resampled FIDs are biased upward: the plain percentile interval misses the point
    assert lo_b < point < hi_b
    assert hi_b - lo_b == pytest.approx(hi_p - lo_p, rel=1e-9)


def test_bias_corrected_equals_percentile_for_a_mean_up_to_the_tiny_bias() -> None:
    v = np.random.default_rng(10).normal(size=200)
    p = bootstrap_ci(lambda i: v[i].mean(), 200, 400, seed=1)
    b = bootstrap_ci(lambda i: v[i].mean(), 200, 400, seed=1, method="bias-corrected")
    assert b == pytest.approx(p, abs=0.01)
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci(lambda i: 0.0, 5, 10, method="bca")
