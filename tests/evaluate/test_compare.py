"""Paired statistics (matbench.paired) against independent references, and `matbench compare` end to end."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from matbench import evaluate as E
from matbench import features as F
from matbench import paired as P
from matbench.cli import main
from matbench.io import save_png
from matbench.metrics.fid import fid, frechet_distance

N = 12
S = 32


# --------------------------------------------------------------------------------------------- paired statistics

def test_paired_mean_matches_the_analytic_paired_interval_at_large_n():
    rng = np.random.default_rng(0)
    n = 20000
    a = rng.normal(5.0, 2.0, n)
    b = a + 0.02 + rng.normal(0.0, 1.0, n)  # shared image effect (a) cancels in b - a
    r = P.paired_mean(a, b, True, P.Resampling(4000, seed=1))
    d = b - a
    se = d.std(ddof=1) / math.sqrt(n)
    lo, hi = d.mean() - 1.96 * se, d.mean() + 1.96 * se
    width = hi - lo
    assert r.delta == pytest.approx(d.mean())
    assert abs(r.ci[0] - lo) < 0.05 * width and abs(r.ci[1] - hi) < 0.05 * width
    z = d.mean() / se  # about 2.8: the bootstrap p-value should match the normal one
    p_normal = math.erfc(abs(z) / math.sqrt(2.0))
    assert r.p_value == pytest.approx(p_normal, abs=0.01)
    assert r.verdict == ("better" if lo > 0 else "tie")
    # the paired interval is far narrower than the unpaired one (the image effect is shared)
    unpaired = 1.96 * math.sqrt(a.var(ddof=1) / n + b.var(ddof=1) / n)
    assert r.ci[1] - r.ci[0] < 0.6 * 2 * unpaired


def test_verdict_follows_the_metric_direction():
    assert P.verdict(-2.0, -1.0, higher_is_better=False) == "better"  # lower FID
    assert P.verdict(-2.0, -1.0, higher_is_better=True) == "worse"  # lower PSNR
    assert P.verdict(1.0, 2.0, higher_is_better=True) == "better"
    assert P.verdict(-1.0, 2.0, higher_is_better=True) == "tie"
    assert P.verdict(0.0, 0.0, higher_is_better=True) == "tie"
    assert P.verdict(float("nan"), float("nan"), higher_is_better=True) == "tie"


def test_pvalue_inverts_the_percentile_interval():
    dev = np.linspace(-1.0, 1.0, 1001)  # delta* = delta + dev
    lo, hi, p = P.interval(0.5, dev, alpha=0.05)
    k = np.count_nonzero(0.5 + dev <= 0)  # 250 of 1001 resamples at or below 0
    assert p == pytest.approx(2 * (k + 1) / 1002)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(0.5 + dev, [0.025, 0.975])))
    assert P.interval(0.0, np.zeros(50))[2] == 1.0  # identical results: p = 1


def _weighted_fd(real, fake, w, convention):
    n = real.shape[0]
    c = 1.0 / (n if convention == "mat" else n - 1)
    mr, mf = (w @ real) / n, (w @ fake) / n
    xr, xf = real - mr, fake - mf
    return frechet_distance(mr, c * (xr * w[:, None]).T @ xr, mf, c * (xf * w[:, None]).T @ xf)


@pytest.mark.parametrize("convention", ["mat", "torch-fidelity"])
def test_fd_influence_is_the_derivative_in_the_image_weights(convention):
    rng = np.random.default_rng(2)
    n, d = 120, 6
    real = rng.normal(size=(n, d))
    fake = 0.8 * real + rng.normal(size=(n, d)) * 0.6 + 0.1
    phi = P.fd_influence(real, fake, convention)
    eps = 1e-4  # central differences: error O(eps^2), rounding of the FD O(1e-16 / eps)
    for i, j in ((3, 7), (0, 50)):  # move weight from image j to image i (weights keep summing to n)
        e = np.zeros(n)
        e[i], e[j] = eps, -eps
        w = np.ones(n)
        num = (_weighted_fd(real, fake, w + e, convention) - _weighted_fd(real, fake, w - e, convention)) / (2 * eps)
        assert num == pytest.approx((phi[i] - phi[j]) / n, rel=1e-4)


def _slow_paired_fd(real, fa, fb, n_resamples, seed, convention="mat"):
    """The full paired bootstrap: FID recomputed from the resampled rows, bias-corrected percentile interval."""
    n = real.shape[0]
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        deltas.append(fid(real[idx], fb[idx], convention) - fid(real[idx], fa[idx], convention))
    deltas = np.array(deltas)
    full = fid(real, fb, convention) - fid(real, fa, convention)
    lo, hi = np.quantile(deltas, [0.025, 0.975]) - (deltas.mean() - full)
    return deltas, float(lo), float(hi)


def _feature_case(n, d, seed):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, d))
    real = base + 0.3 * rng.normal(size=(n, d))
    fa = base + 0.5 * rng.normal(size=(n, d))
    fb = 1.1 * base + 0.5 * rng.normal(size=(n, d)) + 0.05
    return real, fa, fb


@pytest.mark.parametrize(("n", "d", "seed"), [(300, 8, 0), (300, 8, 1), (150, 12, 2), (250, 20, 3)])
def test_linearised_fd_interval_agrees_with_the_slow_paired_bootstrap(n, d, seed):
    real, fa, fb = _feature_case(n, d, seed=seed)
    nb = 400
    deltas, lo, hi = _slow_paired_fd(real, fa, fb, nb, seed=3)
    r = P.paired_fd(real, fa, fb, "mat", method="linear", rs=P.Resampling(nb, seed=3))
    width = hi - lo
    assert r.delta == pytest.approx(fid(real, fb) - fid(real, fa))
    assert abs(r.ci[0] - lo) < 0.1 * width and abs(r.ci[1] - hi) < 0.1 * width
    # method="exact" is the same full bootstrap computed another way (FIDResampler / N x N form)
    ex = P.paired_fd(real, fa, fb, "mat", method="exact", rs=P.Resampling(nb, seed=3))
    assert ex.ci == pytest.approx((lo, hi), rel=1e-6, abs=1e-9)
    assert P.fd_method(n, d) == "linear"


@pytest.mark.parametrize("convention", ["mat", "torch-fidelity"])
def test_fewer_images_than_dimensions_use_the_exact_paired_bootstrap(convention):
    real, fa, fb = _feature_case(40, 64, seed=4)
    _, lo, hi = _slow_paired_fd(real, fa, fb, 100, seed=3, convention=convention)
    r = P.paired_fd(real, fa, fb, convention, rs=P.Resampling(100, seed=3))  # auto: exact, N x N form
    assert r.method.startswith("exact") and r.ci == pytest.approx((lo, hi), rel=1e-6)
    assert r.delta == pytest.approx(fid(real, fb, convention) - fid(real, fa, convention))


def test_fd_of_a_result_with_itself_is_a_tie_with_delta_zero():
    real, fa, _ = _feature_case(100, 8, seed=5)
    for method in P.FD_METHODS:
        r = P.paired_fd(real, fa, fa.copy(), "mat", method=method, rs=P.Resampling(100))
        assert r.delta == 0.0 and r.ci == (0.0, 0.0) and r.verdict == "tie" and r.p_value == 1.0


def test_paired_fd_detects_a_worse_model():
    real, fa, _ = _feature_case(400, 8, seed=6)
    rng = np.random.default_rng(7)
    fb = fa + rng.normal(size=fa.shape) * 0.8  # noisier completions: higher FID
    r = P.paired_fd(real, fa, fb, "mat", rs=P.Resampling(500))
    assert r.delta > 0 and r.ci[0] > 0 and r.verdict == "worse" and r.p_value < 0.01


def test_holm_by_hand():
    adj = P.holm([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(prev, 1*0.04)
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(P.holm([0.5, 0.9]), [1.0, 1.0])


def test_rank_probabilities_by_hand():
    s = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 3.0, 3.0]])
    first, lo, hi = P.rank_probabilities(s, higher_is_better=True, alpha=0.0 + 1e-9)
    np.testing.assert_allclose(first, [1 / 3, 1 / 6, 1 / 2])
    # ranks per row: [3,2,1], [1,2,3], [3,1,1]
    assert lo.tolist() == [1, 1, 1] and hi.tolist() == [3, 2, 3]
    first_low, _, _ = P.rank_probabilities(s, higher_is_better=False)
    np.testing.assert_allclose(first_low, [2 / 3, 0.0, 1 / 3])


# --------------------------------------------------------------------------------------------- matbench compare

def _make_models(root: Path) -> dict[str, Path]:
    """GT images, two models' composites (B adds more noise in the hole: worse PSNR), masks (255 = known)."""
    rng = np.random.default_rng(0)
    d = {k: root / k for k in ("gt", "a", "b", "masks")}
    for i in range(N):
        yy, xx = np.mgrid[0:S, 0:S]
        g = np.stack([(xx * 7 + i * 20) % 256, (yy * 5 + i * 9) % 256, (xx + yy + i * 31) % 256], -1).astype(np.uint8)
        hole = np.zeros((S, S), bool)
        hole[4:4 + 2 * i + 4, 6:26] = True
        for name, amp in (("a", 8), ("b", 60)):
            r = g.copy()
            r[hole] = np.clip(g[hole].astype(int) + rng.integers(-amp, amp + 1, (int(hole.sum()), 3)), 0, 255)
            save_png(d[name] / f"img{i:02d}.png", r)
        save_png(d["gt"] / f"img{i:02d}.png", g)
        save_png(d["masks"] / f"img{i:02d}.png", np.where(hole, 0, 255).astype(np.uint8))
    return d


@pytest.fixture(scope="module")
def evals(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    def fake_extractor(name, device="cpu", smoke=False, path=None, **kw):
        def fwd(x):  # 6 features per image (channel means and spreads): N > D, so FID uses the linearisation
            x = x.float()
            return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
        return F.FeatureExtractor(name, fwd, 6, "d" * 64, smoke)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MATBENCH_CACHE", str(root / "cache"))
        mp.setattr(F, "get_extractor", fake_extractor)  # the smoke Inception takes a minute on CPU
        d = _make_models(root)
        out = {}
        for name in ("a", "b"):
            out[name] = root / f"eval_{name}"
            E.evaluate_folders(d[name], d["gt"], masks_dir=d["masks"], mask_polarity="known=255",
                               metrics="fid,psnr,ssim,l1", out_dir=out[name], progress=False, n_bootstrap=10,
                               smoke=True, save_features=True, device="cpu", workers=0)
    return out


def _compare(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = main(["compare", *argv])
    o, e = capsys.readouterr()
    return rc, o, e


def test_a_copy_of_itself_is_a_tie_with_delta_zero(evals, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(evals["a"], copy)
    rc, out, err = _compare([str(evals["a"]), str(copy), "--json", "--n-resamples", "200"], capsys)
    assert rc == 0, err
    data = json.loads(out)
    assert set(data["metrics"]) == {"fid", "psnr", "ssim", "l1"}
    for name, m in data["metrics"].items():
        assert m["delta"] == 0.0 and m["ci"] == [0.0, 0.0] and m["verdict"] == "tie" and m["p_value"] == 1.0, name


def test_a_degraded_model_is_worse_and_the_json_shape_is_exact(evals, capsys):
    rc, out, err = _compare([str(evals["a"]), str(evals["b"]), "--json", "--n-resamples", "500"], capsys)
    assert rc == 0, err
    data = json.loads(out)
    assert list(data) == ["a", "b", "n", "metrics"]
    assert data["a"] == str(evals["a"]) and data["b"] == str(evals["b"]) and data["n"] == N
    rec_a = json.loads((evals["a"] / "metrics.json").read_text())["metrics"]
    rec_b = json.loads((evals["b"] / "metrics.json").read_text())["metrics"]
    for name, m in data["metrics"].items():
        assert list(m) == ["a", "b", "delta", "ci", "p_value", "verdict"], name
        assert m["a"] == rec_a[name]["value"] and m["b"] == rec_b[name]["value"]
        assert m["delta"] == pytest.approx(m["b"] - m["a"])
        assert len(m["ci"]) == 2 and m["ci"][0] <= m["delta"] <= m["ci"][1]
        assert 0.0 < m["p_value"] <= 1.0 and m["verdict"] in ("better", "worse", "tie")
    psnr = data["metrics"]["psnr"]
    assert psnr["delta"] < 0 and psnr["ci"][1] < 0 and psnr["verdict"] == "worse"
    # PSNR delta and interval from the per-image rows directly (independent of compare's loading)
    da = pd.read_csv(evals["a"] / "per_image.csv")["psnr"].to_numpy()
    db = pd.read_csv(evals["b"] / "per_image.csv")["psnr"].to_numpy()
    ref = P.paired_mean(da, db, True, P.Resampling(500, seed=0))
    assert psnr["ci"] == pytest.approx(list(ref.ci), abs=1e-6)
    assert data["metrics"]["l1"]["verdict"] == "worse"  # lower is better: B's higher L1 is worse


def test_table_output_and_bins(evals, capsys):
    rc, out, err = _compare([str(evals["a"]), str(evals["b"]), "--bins", "--n-resamples", "200",
                             "--metrics", "psnr,fid"], capsys)
    assert rc == 0, err
    lines = out.splitlines()
    psnr = next(line for line in lines if line.startswith("PSNR"))
    assert psnr.split()[-1] == "worse"
    assert any(line.startswith("FID") for line in lines)
    assert "hole ratio 10-20% (n = 3):" in out  # holes of 80..240 px of 1024: ratios 8 %, 11 %, ... 23 %
    assert "95 % interval" in out


def test_features_missing_says_what_cannot_be_compared(evals, tmp_path, capsys):
    copy = tmp_path / "nofeat"
    shutil.copytree(evals["b"], copy)
    (copy / "features.npz").unlink()
    rc, out, err = _compare([str(evals["a"]), str(copy), "--json", "--n-resamples", "100"], capsys)
    assert rc == 0
    assert "fid" not in json.loads(out)["metrics"] and "psnr" in json.loads(out)["metrics"]
    assert f"not compared: fid: dataset-level: needs features.npz on both sides, missing in {copy}" in err


def _edit_csv(folder: Path, fn) -> None:
    df = pd.read_csv(folder / "per_image.csv", dtype={"id": str})
    fn(df)
    df.to_csv(folder / "per_image.csv", index=False)


def test_other_images_masks_or_conventions_are_refused(evals, tmp_path, capsys):
    ids = tmp_path / "ids"
    shutil.copytree(evals["b"], ids)
    _edit_csv(ids, lambda df: df.__setitem__("id", df["id"].replace("img03", "img99")))
    rc, out, err = _compare([str(evals["a"]), str(ids)], capsys)
    assert rc == 2 and out == "" and "Traceback" not in err
    assert err.strip() == (f"matbench: error: {evals['a']} and {ids} did not evaluate the same images: 'img03' "
                           f"of {evals['a']} is not in {ids}")
    masks = tmp_path / "masks"
    shutil.copytree(evals["b"], masks)
    _edit_csv(masks, lambda df: df.__setitem__("hole_ratio", df["hole_ratio"] + (df["id"] == "img04") * 0.01))
    rc, _, err = _compare([str(evals["a"]), str(masks)], capsys)
    assert rc == 2 and "used other masks: hole ratio of 'img04'" in err
    conv = tmp_path / "conv"
    shutil.copytree(evals["b"], conv)
    rec = json.loads((conv / "metrics.json").read_text())
    rec["protocol"]["fid_convention"] = "torch-fidelity"
    (conv / "metrics.json").write_text(json.dumps(rec))
    rc, _, err = _compare([str(evals["a"]), str(conv)], capsys)
    assert rc == 2 and "protocol.fid_convention differs ('mat' vs 'torch-fidelity')" in err
    rc, _, err = _compare([str(evals["a"]), str(evals["b"]), "--metrics", "kid"], capsys)
    assert rc == 2 and "--metrics: kid is not in" in err


def test_reordered_rows_are_aligned_by_id(evals, tmp_path, capsys):
    shuffled = tmp_path / "shuffled"
    shutil.copytree(evals["a"], shuffled)
    order = np.random.default_rng(0).permutation(N)
    df = pd.read_csv(shuffled / "per_image.csv", dtype={"id": str})
    df.iloc[order].to_csv(shuffled / "per_image.csv", index=False)
    with np.load(shuffled / "features.npz") as z:
        feats = {k: z[k][order] for k in z.files}
    np.savez(shuffled / "features.npz", **feats)
    rc, out, err = _compare([str(evals["a"]), str(shuffled), "--json", "--n-resamples", "100"], capsys)
    assert rc == 0, err
    for name, m in json.loads(out)["metrics"].items():
        assert m["ci"] == pytest.approx([0.0, 0.0], abs=1e-9) and m["verdict"] == "tie", name


def test_run_directory_jobs(evals, tmp_path, capsys):
    run = tmp_path / "run"
    for job in ("ja", "jb"):
        shutil.copytree(evals["a" if job == "ja" else "b"], run / "jobs" / job)
    (run / "run.json").write_text("{}")
    rc, out, err = _compare([f"{run}::ja", str(run / "jobs" / "jb"), "--json", "--n-resamples", "100",
                             "--metrics", "psnr"], capsys)
    assert rc == 0, err
    assert json.loads(out)["metrics"]["psnr"]["verdict"] == "worse"
    rc, _, err = _compare([str(run), f"{run}::jb"], capsys)
    assert rc == 2 and f"name one as {run}::JOB (jobs: ja, jb)" in err
    rc, _, err = _compare([f"{run}::nope", f"{run}::jb"], capsys)
    assert rc == 2 and "no job 'nope'" in err
