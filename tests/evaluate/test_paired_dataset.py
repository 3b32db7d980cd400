"""Paired intervals of KID, P-IDS/U-IDS and precision/recall (matbench.paired) against explicit slow paired
bootstrap loops, and `matbench compare` on them from features.npz."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matbench.reports.sample import synthetic_record, write_job
from threadpoolctl import threadpool_limits

from matbench import paired as P
from matbench.cli import main
from matbench.metrics.ids import pids_uids
from matbench.metrics.prc import precision_recall


@pytest.fixture()
def one_thread():
    """The k-NN of precision/recall on tiny arrays is ~40x slower with 2 threads on a loaded 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _case(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, d))
    real = base + 0.3 * rng.normal(size=(n, d))
    fa = base + 0.5 * rng.normal(size=(n, d))
    fb = 1.1 * base + 0.5 * rng.normal(size=(n, d)) + 0.05
    return real, fa, fb


def _kernel(x, y):
    return (x @ y.T / x.shape[1] + 1.0) ** 3  # KID's cubic kernel, written out again


def _mmd2(x, y):
    """The unbiased MMD^2 by its definition: pairs i != j by position (so repeated images pair up too)."""
    n = x.shape[0]
    kxx, kyy, kxy = _kernel(x, x), _kernel(y, y), _kernel(x, y)
    off = ~np.eye(n, dtype=bool)
    return kxx[off].mean() + kyy[off].mean() - 2.0 * kxy.mean()


def _weighted_mmd2(x, y, w):
    kxx, kyy, kxy = _kernel(x, x), _kernel(y, y), _kernel(x, y)
    ww = np.outer(w, w)
    np.fill_diagonal(ww, 0.0)
    return (ww * kxx).sum() / ww.sum() + (ww * kyy).sum() / ww.sum() - 2.0 * (np.outer(w, w) * kxy).sum() / w.sum() ** 2


def test_kid_influence_is_the_derivative_in_the_image_weights():
    real, fa, _ = _case(80, 5, 0)
    phi = P.kid_influence(real, fa)
    assert P.mmd2_unbiased(real, fa) == pytest.approx(_mmd2(real, fa))
    assert abs(phi.mean()) < 1e-9
    eps = 1e-4
    for i, j in ((2, 9), (0, 40)):
        e = np.zeros(80)
        e[i], e[j] = eps, -eps
        w = np.ones(80)
        num = (_weighted_mmd2(real, fa, w + e) - _weighted_mmd2(real, fa, w - e)) / (2 * eps)
        assert num == pytest.approx((phi[i] - phi[j]) / 80, rel=1e-4)


def _slow_paired(stat, real, fa, fb, n_resamples, seed):
    """The explicit paired bootstrap: the metric recomputed on both models' resampled rows, bias-corrected."""
    n = real.shape[0]
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        deltas.append(stat(real[idx], fb[idx]) - stat(real[idx], fa[idx]))
    deltas = np.array(deltas)
    full = stat(real, fb) - stat(real, fa)
    return np.quantile(deltas, [0.025, 0.975]) - (deltas.mean() - full)


@pytest.mark.parametrize(("n", "d", "seed"), [(200, 8, 1)])
def test_linearised_kid_interval_agrees_with_the_slow_paired_bootstrap(n, d, seed):
    real, fa, fb = _case(n, d, seed)
    with threadpool_limits(1):  # small matrix products: threads only contend on a loaded 2-core machine
        lo, hi = _slow_paired(_mmd2, real, fa, fb, 400, seed=3)
    r = P.paired_kid(real, fa, fb, rs=P.Resampling(400, seed=3))
    width = hi - lo
    assert r.delta == pytest.approx(_mmd2(real, fb) - _mmd2(real, fa))
    # measured at n = 200..1000: ends off by 3..14 % of the width (the resampled U-statistic is right-skewed, its
    # linear part is not), so 15 %, not the 10 % the Fréchet distances meet (docs/statistics.md)
    assert abs(r.ci[0] - lo) < 0.15 * width and abs(r.ci[1] - hi) < 0.15 * width
    same = P.paired_kid(real, fa, fa.copy(), rs=P.Resampling(50))
    assert same.delta == 0.0 and same.ci == (0.0, 0.0) and same.verdict == "tie"


def test_kid_influence_on_a_subsample_gives_the_same_width():
    real, fa, fb = _case(1600, 6, 4)
    full = P.paired_kid(real, fa, fb, rs=P.Resampling(2000, seed=1))
    capped = P.paired_kid(real, fa, fb, rs=P.Resampling(2000, seed=1), cap=400)
    assert "influence on 400 of 1600 images" in capped.method
    w_full, w_cap = full.ci[1] - full.ci[0], capped.ci[1] - capped.ci[0]
    assert w_cap == pytest.approx(w_full, rel=0.2)


def test_refit_bootstrap_is_the_explicit_loop_and_rescales_subsamples():
    rng = np.random.default_rng(5)
    n = 500
    real = rng.normal(size=(n, 2))
    fa = real + rng.normal(size=(n, 2))
    fb = real + rng.normal(size=(n, 2)) + 0.1

    def stat(r, f):
        return float(np.mean(np.abs(f[:, 0] - r[:, 0])))  # any metric of the resampled rows

    r = P.paired_refit(stat, real, fa, fb, False, rs=P.Resampling(300, seed=2), cap=n)
    lo, hi = _slow_paired(stat, real, fa, fb, 300, seed=2)
    assert r.ci == pytest.approx((lo, hi), rel=1e-9)
    # m-out-of-n: resamples of 100 images, deviations scaled by sqrt(100 / 500): the same sd as the mean over n
    sub = P.paired_refit(stat, real, fa, fb, False, rs=P.Resampling(1000, seed=2), cap=100)
    d = np.abs(fb[:, 0] - real[:, 0]) - np.abs(fa[:, 0] - real[:, 0])
    assert "m-out-of-n" in sub.method
    assert float(np.std(sub.deviations)) == pytest.approx(d.std() / math.sqrt(n), rel=0.15)


def test_ids_and_pr_refit_intervals_are_the_explicit_loop(one_thread):
    real, fa, fb = _case(120, 4, 6)
    for name, stat, hib in (("pids", lambda r, f: pids_uids(r, f)["pids"], True),
                            ("recall", lambda r, f: precision_recall(r, f)["recall"], True)):
        r = P.paired_refit(stat, real, fa, fb, hib, rs=P.Resampling(20, seed=1))
        lo, hi = _slow_paired(stat, real, fa, fb, 20, seed=1)
        assert r.ci == pytest.approx((lo, hi), abs=1e-12), name
        assert r.delta == pytest.approx(stat(real, fb) - stat(real, fa)), name


# --------------------------------------------------------------------------------------------- compare

N_IMG, D = 80, 4


def _job(run: Path, real: np.ndarray, fake: np.ndarray) -> Path:
    ids = pids_uids(real, fake)
    rec = synthetic_record("places", "mat-large", "mat", {"kid": P.mmd2_unbiased(real, fake), "pids": ids["pids"],
                                                            "uids": ids["uids"], "cmmd": 0.1}, n=N_IMG,
                           feature_extractor="inception-v3-compat")
    folder = write_job(run, rec).parent
    pd.DataFrame({"id": [f"i{i}" for i in range(N_IMG)], "hole_ratio": 0.3}).to_csv(folder / "per_image.csv",
                                                                                     index=False)
    np.savez(folder / "features.npz", **{"inception-v3-compat.real": real.astype(np.float32),
                                         "inception-v3-compat.fake": fake.astype(np.float32)})
    return folder


def test_compare_pairs_kid_and_ids(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    real, fa, _ = _case(N_IMG, D, 7)
    fb = fa + np.random.default_rng(8).normal(size=fa.shape) * 1.5  # a much worse model
    a, b = _job(tmp_path / "a", real, fa), _job(tmp_path / "b", real, fb)
    assert main(["compare", str(a), str(b), "--json", "--n-resamples", "20"]) == 0
    out, err = capsys.readouterr()
    m = json.loads(out)["metrics"]
    assert set(m) == {"kid", "pids", "uids"}
    assert m["kid"]["verdict"] == "worse" and m["kid"]["delta"] > 0
    assert "not compared: cmmd: dataset-level: no paired interval for this metric yet" in err
    assert main(["compare", str(a), str(b), "--n-resamples", "20", "--metrics", "kid,pids"]) == 0
    text = capsys.readouterr().out
    assert "kid: linearised bootstrap (U-statistic influence)" in text
    assert "pids: paired bootstrap, refit per resample (20 resamples of 80 images)" in text
