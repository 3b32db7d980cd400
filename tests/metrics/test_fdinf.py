"""FD∞ (matbench/metrics/fdinf.py): the sizes, the subset FDs against fd.fd on the same explicit subsets, the fit
against np.polyfit and scipy's linregress, and fid_inf through the Evaluator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import matbench.metrics as M
from matbench.evaluate import BatchResult, Evaluator
from matbench.metrics import fdinf
from matbench.metrics.fd import fd


def _feats(n: int, d: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, d))
    fake = rng.normal(size=(n, d)) * 1.1 + shift
    return real, fake


def test_subset_sizes():
    # the authors' sizes for 50000 images: 15 evenly spaced from 5000
    np.testing.assert_array_equal(fdinf.subset_sizes(50_000), np.linspace(5000, 50_000, 15).astype(int))
    np.testing.assert_array_equal(fdinf.subset_sizes(100_000), np.linspace(5000, 100_000, 15).astype(int))
    np.testing.assert_array_equal(fdinf.subset_sizes(8), [2, 3, 4, 5, 6, 7, 8])  # small: distinct sizes only
    assert fdinf.subset_sizes(1000)[0] == 100 and fdinf.subset_sizes(1000)[-1] == 1000
    assert fdinf.subset_sizes(2).tolist() == [2]


@pytest.mark.parametrize(("n", "d", "convention"), [(300, 12, "mat"), (300, 12, "torch-fidelity"),
                                                    (40, 64, "mat"), (40, 64, "torch-fidelity")])
def test_fit_matches_a_direct_computation(n, d, convention):
    real, fake = _feats(n, d, 0.3, seed=n + d)
    seed = 5
    got = fdinf.fd_infinity(real, fake, seed=seed, convention=convention)
    # direct: the same random subsets (PCG64 seeded, one choice without replacement per size, in order), fd.fd
    sizes = fdinf.subset_sizes(n)
    rng = np.random.default_rng(seed)
    values = [fd(real, fake[rng.choice(n, int(s), replace=False)], convention) for s in sizes]
    np.testing.assert_allclose(got["values"], values, rtol=1e-6)  # N < D: the N×N form of the same distance
    assert got["sizes"] == sizes.tolist()
    slope, intercept = np.polyfit(1.0 / sizes, values, 1)
    assert got["value"] == got["intercept"] == pytest.approx(intercept, rel=1e-6)
    assert got["slope"] == pytest.approx(slope, rel=1e-6)
    lr = stats.linregress(1.0 / sizes, values)
    assert got["se"] == pytest.approx(lr.intercept_stderr, rel=1e-5)
    t = stats.t.ppf(0.975, len(sizes) - 2)
    assert got["ci_low"] == pytest.approx(intercept - t * lr.intercept_stderr, rel=1e-5)
    assert got["ci_high"] == pytest.approx(intercept + t * lr.intercept_stderr, rel=1e-5)


def test_extrapolation_removes_the_result_side_bias():
    # same distribution: the true distance is 0. FD on N + N images is biased upwards by about c/N from each
    # side; FD∞ extrapolates the results' side only (the ground truth keeps its N images), so about half remains
    for seed in range(3):
        real = np.random.default_rng(seed).normal(size=(2000, 32))
        fake = np.random.default_rng(seed + 100).normal(size=(2000, 32))
        got = fdinf.fd_infinity(real, fake, seed=0, convention="torch-fidelity")
        fd_n = fd(real, fake, "torch-fidelity")
        assert got["slope"] > 0
        assert 0.3 * fd_n < got["value"] < 0.7 * fd_n


def test_too_few_images_give_no_value():
    real, fake = _feats(2, 4, 0.0, seed=0)
    got = fdinf.fd_infinity(real, fake)
    assert np.isnan(got["value"]) and got["ci_low"] is None


def test_fid_inf_through_the_evaluator(tmp_path, monkeypatch):
    monkeypatch.setenv("MATBENCH_CACHE", str(tmp_path / "cache"))
    n, d = 30, 2048
    real, fake = _feats(n, d, 0.05, seed=9)
    ids = [f"i{k}" for k in range(n)]
    ev = Evaluator(["fid_inf"], smoke=True, device="cpu", cache_dir=False, seed=3)
    rows = [{"id": i, "hole_ratio": 0.3, "pair_check": "unchecked"} for i in ids]
    b = BatchResult(ids=ids, rows=rows, features={"inception_real": real, "inception_fake": fake})
    rec, _ = ev.finalize([b], job={})
    m = rec.metrics["fid_inf"]
    ref = fdinf.fd_infinity(real, fake, seed=3, convention=ev.fid_convention)
    assert m.value == pytest.approx(ref["value"], rel=1e-9) and m.n == n
    assert m.extra["sizes"] == ref["sizes"] and m.extra["ci_method"] == "fit-se"
    assert m.ci_low == pytest.approx(ref["ci_low"]) and m.convention == ev.fid_convention
    info = M.registered()
    assert info["fid_inf"].label == "FID∞" and info["fd_dinov2_inf"].extractor == "dinov2-vitl14"
    assert not info["fid_inf"].higher_is_better and info["fid_inf"].interval == "fit-se"
