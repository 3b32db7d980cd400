"""Percentile bootstrap confidence intervals over images.

`statistic` receives an index array (a resample with replacement of range(n)) and returns the metric computed on
those images: for per-image metrics the mean of the selected values; for FID the statistic recomputes the
feature mean/covariance of the selected rows; for P-IDS it evaluates the already fitted SVM's scores on the
selected pairs (pids_from_scores), i.e. the SVM is not refit per resample.
Resamples come from numpy's PCG64 generator seeded with `seed`, so an interval is reproducible.

Methods:
  "percentile"      (default) the alpha/2 and 1-alpha/2 quantiles of the resampled statistic.
  "bias-corrected"  the same quantiles shifted by the bootstrap bias estimate mean(resamples) - statistic(all).
                    Use it for FID (and KID): a resample repeats images, which inflates the feature covariance
                    noise, so resampled FIDs sit well above the full-sample FID and the plain percentile interval
                    can miss the point estimate entirely (measured in docs/metrics.md). Means of per-image values
                    (LPIPS, PSNR, P-IDS over fixed SVM scores) have no such bias; both methods then agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

METHODS = ("percentile", "bias-corrected")
# seconds spent resampling, summed over the process; Evaluator.finalize reports its share as "bootstrap"
BOOTSTRAP_CLOCK = {"s": 0.0}


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, n_resamples: int = 1000, seed: int = 0,
                 alpha: float = 0.05, method: str = "percentile") -> tuple[float, float]:
    """(low, high) interval at level 1 - alpha (see the module doc for `method`). Non-finite resample values are
    dropped; if none is finite the interval is (nan, nan)."""
    if method not in METHODS:
        raise ValueError(f"unknown bootstrap method {method!r}; expected one of {', '.join(METHODS)}")
    if n < 1:
        raise ValueError(f"bootstrap needs n >= 1, got {n}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples, dtype=np.float64)
    for i in range(n_resamples):
        stats[i] = statistic(rng.integers(0, n, size=n))
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0])
    if method == "bias-corrected":
        bias = float(np.mean(stats)) - float(statistic(np.arange(n)))
        lo, hi = lo - bias, hi - bias
    return float(lo), float(hi)


def mean_ci(values: np.ndarray, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Bootstrap interval of the mean of per-image values (vectorised in chunks)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    n = v.size
    if n < 1:
        raise ValueError("mean_ci needs at least one value")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    # Same resampling stream as bootstrap_ci(lambda idx: v[idx].mean(), n, ...), just batched.
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, (1 << 22) // n)
    for start in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(m, n))
        means[start:start + m] = v[idx].mean(axis=1)
    means = means[np.isfinite(means)]
    if means.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def bootstrap_interval(stat: Callable[[np.ndarray], float], n: int, n_resamples: int, seed: int,
                       method: str = "percentile") -> tuple[float | None, float | None]:
    """bootstrap_ci for the Evaluator: (None, None) when no interval can be given (no resamples, n < 2); the time
    spent is added to BOOTSTRAP_CLOCK."""
    if n_resamples <= 0 or n < 2:
        return None, None
    t0 = time.perf_counter()
    try:
        lo, hi = bootstrap_ci(stat, n, n_resamples, seed, method=method)
        return float(lo), float(hi)
    finally:
        BOOTSTRAP_CLOCK["s"] += time.perf_counter() - t0


def mean_interval(values: np.ndarray, n_resamples: int, seed: int) -> tuple[float | None, float | None]:
    """mean_ci for the Evaluator: (None, None) when no interval can be given; timed in BOOTSTRAP_CLOCK."""
    v = np.asarray(values, dtype=np.float64)
    if n_resamples <= 0 or v.size < 2:
        return None, None
    t0 = time.perf_counter()
    try:
        lo, hi = mean_ci(v, n_resamples=n_resamples, seed=seed)
        return float(lo), float(hi)
    finally:
        BOOTSTRAP_CLOCK["s"] += time.perf_counter() - t0
