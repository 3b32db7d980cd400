"""Rank confidence and ranking robustness (matbench.ranking) against slow explicit loops and hand-made cases."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from rank_helpers import write_group

from matbench import ranking as R
from matbench.comparison import load_side
from matbench.metrics.fid import fid
from matbench.paired import Resampling, holm, resampled_means


def _sides(run: Path, models: str) -> list:
    out = []
    for m in models:
        s = load_side(str(run / "jobs" / f"places-mat-large-{m}-512"))
        s.label = m
        out.append(s)
    return out


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, np.ndarray, dict]:
    """Four models on 150 images: a clearly best, b and c exchangeable, d clearly worst (LPIPS and FID)."""
    rng = np.random.default_rng(0)
    n, d = 150, 4
    image = rng.normal(0.0, 1.0, n)  # shared image difficulty
    real = rng.normal(size=(n, d))
    noise_bc = rng.normal(0.0, 0.02, n)
    lp = {"a": 0.30 + 0.05 * image + rng.normal(0.0, 0.005, n),
          "b": 0.35 + 0.05 * image + noise_bc,
          "c": 0.35 + 0.05 * image + rng.normal(0.0, 0.02, n),  # same distribution as b
          "d": 0.45 + 0.05 * image + rng.normal(0.0, 0.005, n)}
    fakes = {m: real + rng.normal(size=(n, d)) * s for m, s in (("a", 0.2), ("b", 0.6), ("c", 0.6),
                                                                     ("d", 1.5))}
    run = write_group(tmp_path_factory.mktemp("rank") / "run", {m: {"lpips": v} for m, v in lp.items()},
                      real=real, fakes=fakes)
    return run, lp, real, fakes


def test_weight_pass_equals_the_gather_of_paired_resampled_means():
    v = np.random.default_rng(1).normal(size=(37, 3))
    np.testing.assert_allclose(R.resampled_means_all(v, 300, 5), resampled_means(v, 300, 5), rtol=1e-12, atol=1e-12)


def _slow_first(samples: np.ndarray, lower_better: bool) -> np.ndarray:
    """P(rank 1) by counting, resample by resample (no ties in continuous samples)."""
    wins = np.zeros(samples.shape[1])
    for row in samples:
        wins[int(np.argmin(row) if lower_better else np.argmax(row))] += 1
    return wins / samples.shape[0]


def test_rank_probabilities_match_a_slow_joint_bootstrap_loop(group):
    run, lp, real, fakes = group
    models = "abcd"
    res = R.rank_metrics(_sides(run, models), ["lpips", "fid"], Resampling(2000, seed=3))
    b_slow = 1000
    rng = np.random.default_rng(99)  # other draws: agreement is within Monte-Carlo error, not by construction
    per_image = np.empty((b_slow, 4))
    frechet = np.empty((b_slow, 4))
    n = real.shape[0]
    for k in range(b_slow):
        idx = rng.integers(0, n, n)  # one index set for the real rows and every model
        for j, m in enumerate(models):
            per_image[k, j] = lp[m][idx].mean()
            frechet[k, j] = fid(real[idx], fakes[m][idx], "mat")
    for name, slow in (("lpips", per_image), ("fid", frechet)):
        r = res[name]
        assert isinstance(r, R.RankConfidence), r
        want = _slow_first(slow, lower_better=True)
        got = np.array([r.of(m)["p_rank1"] for m in models])
        # 3 binomial standard errors of the two estimates, plus the linearisation's share for FID
        tol = 3 * np.sqrt(want * (1 - want) / b_slow + got * (1 - got) / 2000) + (0.05 if name == "fid" else 0.0)
        assert np.all(np.abs(got - want) <= tol + 1e-9), (name, got, want)
    lpips = res["lpips"]
    assert lpips.order[0] == "a" and lpips.order[-1] == "d" and lpips.of("a")["p_rank1"] == 1.0
    assert (lpips.of("a")["rank_lo"], lpips.of("a")["rank_hi"]) == (1, 1)
    assert lpips.of("d")["rank_lo"] == 4


def test_separated_pair_is_marked_and_an_exchangeable_pair_is_not(group):
    run, *_ = group
    r = R.rank_metrics(_sides(run, "abcd"), ["lpips"], Resampling(2000))["lpips"]
    sep = dict(zip(r.order, r.separated, strict=True))
    mid = [m for m in r.order if m in "bc"]
    assert r.order[0] == "a" and sep["a"] is True  # a vs the better of b, c: far apart
    assert sep[mid[0]] is False  # b vs c: exchangeable
    assert sep[mid[1]] is True and sep["d"] is None  # the worse of b, c vs d; d is last
    # Holm over the neighbour pairs: the adjusted p-values are holm() of the raw neighbour p-values
    assert r.p_next[1] >= 0.05 and r.p_next[0] <= 0.01


def test_holm_step_down_by_hand():
    # p = 0.01, 0.02, 0.04 (m = 3): 3*0.01 = 0.03, max(0.03, 2*0.02) = 0.04, max(0.04, 1*0.04) = 0.04
    np.testing.assert_allclose(holm([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])
    # a large first p caps the later ones: 2*0.3 = 0.6, max(0.6, 0.5) = 0.6
    np.testing.assert_allclose(holm([0.5, 0.3]), [0.6, 0.6])


def test_missing_inputs_give_a_reason_not_a_guess(tmp_path: Path, group):
    run, *_ = group
    sides = _sides(run, "abcd")
    res = R.rank_metrics(sides, ["pids"])
    assert "nothing to rank" in res["pids"]
    other = write_group(tmp_path / "run", {m: {"lpips": np.linspace(0, 1, 12) + i} for i, m in enumerate("ab")})
    res = R.rank_metrics(_sides(other, "ab"), ["fid", "lpips"])
    assert isinstance(res["lpips"], R.RankConfidence) and res["lpips"].separated == (True, None)
    assert res["fid"] == "0 model(s) with a fid value: nothing to rank"


def test_fid_without_features_names_the_missing_file(tmp_path: Path):
    rng = np.random.default_rng(4)
    real = rng.normal(size=(20, 3))
    fakes = {m: real + rng.normal(size=(20, 3)) * (0.3 + i) for i, m in enumerate("ab")}
    run = write_group(tmp_path / "run", {m: {"lpips": rng.random(20)} for m in "ab"}, real=real, fakes=fakes)
    (run / "jobs" / "places-mat-large-b-512" / "features.npz").unlink()
    res = R.rank_metrics(_sides(run, "ab"), ["fid"], Resampling(200))
    assert "features.npz for every model, missing for b" in res["fid"]
    (run / "jobs" / "places-mat-large-b-512" / "features.npz").write_bytes(b"not a zip")
    res = R.rank_metrics(_sides(run, "ab"), ["fid", "lpips"], Resampling(200))
    assert "not a readable features file" in res["fid"] and isinstance(res["lpips"], R.RankConfidence)


def _tau_loop(x: list[float], y: list[float]) -> float:
    """Kendall tau-b written out: concordant, discordant and tied pairs counted one by one."""
    conc = disc = tie_x = tie_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            tie_x += 1
        elif dy == 0:
            tie_y += 1
        elif dx * dy > 0:
            conc += 1
        else:
            disc += 1
    return (conc - disc) / ((conc + disc + tie_x) * (conc + disc + tie_y)) ** 0.5


def test_kendall_tau_against_a_hand_written_loop():
    rng = np.random.default_rng(7)
    assert R.kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert R.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert R.kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)  # 2 concordant, 1 discordant
    for _ in range(20):
        x = rng.integers(0, 4, 7).astype(float).tolist()  # ties on purpose
        y = rng.integers(0, 4, 7).astype(float).tolist()
        if len(set(x)) > 1 and len(set(y)) > 1:
            assert R.kendall_tau(x, y) == pytest.approx(_tau_loop(x, y), abs=1e-12)
    assert np.isnan(R.kendall_tau([1, 1, 1], [1, 2, 3]))


def test_robustness_counts_the_subsets_that_keep_the_order(group):
    run, lp, real, fakes = group
    rb = R.robustness(_sides(run, "abcd"), ["lpips"], "fid", n_subsamples=300, seed=1)
    assert isinstance(rb, R.Robustness)
    ref, lpips = rb.rows
    assert ref.metric == "fid" and ref.order[0] == "a" and ref.order[-1] == "d"
    fid_scores = [-fid(real, fakes[m], "mat") for m in "abcd"]
    assert lpips.tau == pytest.approx(_tau_loop(fid_scores, [-lp[m].mean() for m in "abcd"]))
    for row in rb.rows:  # b and c are exchangeable: the full order is not stable, the top model is
        assert [s.size for s in row.stability] == [75, 37]
        assert all(s.top1 > 0.95 for s in row.stability) and row.stability[0].order < 0.95
    # the N/2 fraction for LPIPS by an explicit loop over other random subsets (Monte-Carlo agreement)
    rng = np.random.default_rng(123)
    full = list(lpips.order)
    kept = 0
    trials = 600
    for _ in range(trials):
        sub = rng.choice(150, 75, replace=False)
        kept += sorted("abcd", key=lambda m: (lp[m][sub].mean(), m)) == full
    want, got = kept / trials, lpips.stability[0].order
    assert abs(got - want) <= 3 * np.sqrt(want * (1 - want) * (1 / trials + 1 / 300))
    assert "kept in only" in rb.summary  # the plain-language line says the top-2 order is not stable


def test_summary_names_a_top2_flip():
    rows = [R.MetricRobustness("fid", ("a", "b", "c"), None, None, None),
            R.MetricRobustness("fd_dinov2", ("b", "a", "c"), 1 / 3, False, False),
            R.MetricRobustness("lpips", ("a", "c", "b"), 1 / 3, True, False)]
    assert R._summary("fid", rows) == "FD_DINOv2 puts b first where FID puts a first."
    more = rows + [R.MetricRobustness("cmmd", ("c", "a", "b"), -1 / 3, False, False),
                   R.MetricRobustness("kid", ("b", "c", "a"), -1 / 3, False, False)]
    assert R._summary("fid", more) == "FD_DINOv2, KID (×10³) put b first and CMMD puts c first where FID puts a first."
    assert R._summary("fid", [rows[0], rows[2]]) == "The top-2 order flips under LPIPS."
    assert R._summary("fid", rows[:1] + [R.MetricRobustness("lpips", ("a", "b", "c"), 1.0, True, True)]) == (
        "The ranking holds: every metric computed has the same top-2 as FID (Kendall τ ≥ 1.00).")
