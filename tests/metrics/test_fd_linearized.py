"""The linearized interval of a Fréchet distance (metrics.fd.fd_influence) against independent references: the
influence values against a finite difference of the weighted distance written out with numpy, and the interval
against an explicit bootstrap loop of the distance itself."""

from __future__ import annotations

import numpy as np
import pytest

from matbench.metrics.bootstrap import bootstrap_ci, mean_ci
from matbench.metrics.fd import LINEAR_MIN_N, fd, fd_influence, fd_interval, frechet_distance, linearized


def _pairs(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, d)) * np.linspace(0.5, 2.0, d)
    fake = 0.6 * real + rng.normal(size=(n, d)) * 0.9 + 0.2
    return real, fake


def _weighted_fd(real: np.ndarray, fake: np.ndarray, w: np.ndarray, convention: str) -> float:
    ws = w.sum()

    def stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mu = (w[:, None] * x).sum(0) / ws
        xc = x - mu
        return mu, (w[:, None] * xc).T @ xc / (ws if convention == "mat" else ws - 1)

    return frechet_distance(*stats(real), *stats(fake))


@pytest.mark.parametrize("convention", ["mat", "torch-fidelity"])
def test_influence_values_are_the_derivative_of_the_weighted_distance(convention):
    real, fake = _pairs(500, 6)
    n = real.shape[0]
    value, psi = fd(real, fake, convention), fd_influence(real, fake, convention)
    assert abs(psi.mean()) < 1e-10 * np.abs(psi).max()  # the total weight is fixed: influences sum to zero
    eps = 1e-6
    for i in (0, 17, 333):
        w = np.full(n, 1.0 - eps / n)
        w[i] += eps  # move weight onto pair i, total kept at n (what a resample does)
        fd_diff = (_weighted_fd(real, fake, w, convention) - value) / eps * n
        assert fd_diff == pytest.approx(psi[i], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("convention", ["mat", "torch-fidelity"])
def test_linearized_interval_agrees_with_an_explicit_bootstrap(convention):
    real, fake = _pairs(2500, 8, seed=3)
    n = real.shape[0]
    value, psi = fd(real, fake, convention), fd_influence(real, fake, convention)
    lo, hi = mean_ci(psi, n_resamples=400, seed=1)
    lin = (value + lo, value + hi)
    # the reference: every resample's distance recomputed from scratch, bias-corrected as the slow path
    ref = bootstrap_ci(lambda idx: fd(real[idx], fake[idx], convention), n, 400, seed=2, method="bias-corrected")
    width = ref[1] - ref[0]
    assert abs(lin[0] - ref[0]) < 0.1 * width and abs(lin[1] - ref[1]) < 0.1 * width


def test_large_sets_take_the_linearized_path():
    real, fake = _pairs(LINEAR_MIN_N, 8, seed=5)
    assert linearized(real, fake) and not linearized(real[:100], fake[:100])
    value, lo, hi, method = fd_interval(real, fake, "mat", 200, 0)
    assert method == "linearized" and lo < value < hi
    assert value == pytest.approx(fd(real, fake, "mat"), rel=1e-10)
    _, lo0, hi0, _ = fd_interval(real, fake, "mat", 0, 0)
    assert lo0 is None and hi0 is None
