"""Evaluation orchestration: pair checks, finalize (CIs, bins, batch-order independence), folders, `matbench eval`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from golden_helpers import NvidiaStandIn

from matbench import evaluate as E
from matbench import features as F
from matbench.cli import main
from matbench.io import save_png

N = 8
S = 32


def _make_case(root: Path, n: int = N, seed: int = 0) -> dict[str, Path]:
    """GT images, composited results (hole region replaced), MAT-polarity masks (255 = known)."""
    rng = np.random.default_rng(seed)
    d = {k: root / k for k in ("gt", "res", "masks")}
    for i in range(n):
        yy, xx = np.mgrid[0:S, 0:S]
        g = np.stack([(xx * 7 + i * 20) % 256, (yy * 5 + i * 9) % 256, (xx + yy + i * 31) % 256], -1).astype(np.uint8)
        g = np.clip(g.astype(int) + rng.integers(-20, 20, g.shape), 0, 255).astype(np.uint8)
        hole = np.zeros((S, S), bool)
        hole[4:4 + 3 * i + 3, 6:26] = True
        r = g.copy()
        r[hole] = rng.integers(0, 256, (int(hole.sum()), 3))
        save_png(d["gt"] / f"img{i:02d}.png", g)
        save_png(d["res"] / f"img{i:02d}.png", r)
        save_png(d["masks"] / f"img{i:02d}.png", np.where(hole, 0, 255).astype(np.uint8))
    return d


@pytest.fixture
def case(tmp_path, monkeypatch) -> dict[str, Path]:
    monkeypatch.setenv("MATBENCH_CACHE", str(tmp_path / "cache"))
    return _make_case(tmp_path)


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


# --------------------------------------------------------------------------------------------- units

def test_check_pair():
    rng = np.random.default_rng(0)
    g = rng.integers(0, 256, (3, 20, 20), dtype=np.uint8)
    hole = np.zeros((20, 20), bool)
    hole[5:15, 5:15] = True
    r = g.copy()
    r[:, hole] = 0
    assert E.check_pair(g, r, hole)  # differs only in the hole
    noisy = np.clip(r.astype(int) + rng.integers(-3, 4, r.shape), 0, 255).astype(np.uint8)  # JPEG-like noise
    assert E.check_pair(g, noisy, hole)
    other = rng.integers(0, 256, (3, 20, 20), dtype=np.uint8)
    assert not E.check_pair(g, other, hole)  # a different image in the known region
    assert E.check_pair(g, other, np.ones((20, 20), bool))  # nothing known: nothing to check
    assert E.check_pair(g.transpose(1, 2, 0), r.transpose(1, 2, 0), torch.from_numpy(hole)[None])  # HWC, 1HW
    assert E.known_region_diff(g, r, hole) == 0.0


@pytest.mark.parametrize("convention", ["mat", "torch-fidelity"])
def test_fast_fid_matches_scipy_reference(convention):
    import scipy.linalg

    rng = np.random.default_rng(1)
    real = rng.normal(size=(12, 20))
    fake = rng.normal(size=(12, 20)) * 1.3 + 0.2
    ddof = 0 if convention == "mat" else 1
    s1, s2 = np.cov(real, rowvar=False, ddof=ddof), np.cov(fake, rowvar=False, ddof=ddof)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    diff = real.mean(0) - fake.mean(0)
    ref = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    from matbench.metrics.fd import fd_statistic
    from matbench.metrics.fid import fid

    fast = fd_statistic(real, fake, convention)(np.arange(12))  # N < D: the N x N cross-product form
    assert fast == pytest.approx(ref, rel=1e-6)
    assert fast == pytest.approx(fid(real, fake, convention), rel=1e-8)


@pytest.mark.parametrize("n,d", [(12, 20), (40, 6)])  # N < D (cross-product SVD) and N >= D (eigh)
@pytest.mark.parametrize("convention", ["mat", "torch-fidelity"])
def test_bootstrap_fid_statistic_matches_metric_module(n, d, convention):
    from matbench.metrics.fd import fd_statistic
    from matbench.metrics.fid import fid

    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(n, d)), rng.normal(size=(n, d)) * 0.7 + 0.1
    stat = fd_statistic(real, fake, convention)
    idx = rng.integers(0, n, n)  # a bootstrap resample, with repeats
    assert stat(idx) == pytest.approx(fid(real[idx], fake[idx], convention), rel=1e-8)
    real[:, 0] = 0.0  # a dead channel: singular covariance, Cholesky fails, eigh fallback
    stat = fd_statistic(real, fake, convention)
    assert stat(idx) == pytest.approx(fid(real[idx], fake[idx], convention), rel=1e-8)


def test_parse_metrics():
    assert E.parse_metrics("ssim,fid, psnr") == ["fid", "psnr", "ssim"]
    with pytest.raises(Exception, match="bogus"):
        E.parse_metrics("fid,bogus")


def _fake_batches(n: int, sizes: list[int], d: int = 6, seed: int = 0) -> list[E.BatchResult]:
    rng = np.random.default_rng(seed)
    ir, if_ = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 0.5
    vr, vf = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 0.2
    rows = [{"id": f"i{i}", "hole_ratio": float((i % 5) / 5 + 0.05), "lpips": float(rng.random()),
             "psnr": float(20 + rng.random()), "ssim": float(rng.random()), "l1": float(rng.random() / 10),
             "pair_check": "ok"} for i in range(n)]
    out, start = [], 0
    for s in sizes:
        sl = slice(start, start + s)
        out.append(E.BatchResult([r["id"] for r in rows[sl]], rows[sl],
                                 {"inception_real": ir[sl], "inception_fake": if_[sl], "vgg_real": vr[sl],
                                  "vgg_fake": vf[sl]}))
        start += s
    return out


def _cheap_evaluator(**kw) -> E.Evaluator:
    ev = E.Evaluator(["fid", "pids", "uids", "lpips", "pr", "kid", "psnr", "ssim", "l1"], n_bootstrap=30,
                     kid_subset_size=10, kid_subsets=5, cache_dir=False, **kw)
    ext = F.FeatureExtractor("inception-v3-compat", lambda x: x, 6, "f" * 64, smoke=True)
    ev._networks.update(inception=ext, vgg16=F.FeatureExtractor("vgg16", lambda x: x, 6, "e" * 64, smoke=True))
    ev._lpips = type("L", (), {"provenance": lambda self: {"net": "alex"}})()
    return ev


def test_finalize_does_not_depend_on_batching_and_has_cis_and_bins():
    n = 40
    ev = _cheap_evaluator()
    rec_a, df_a = ev.finalize(_fake_batches(n, [40]), {"model": "m"}, {"maskset_sha256": "abc"})
    rec_b, df_b = _cheap_evaluator().finalize(_fake_batches(n, [7, 13, 1, 19]), {"model": "m"},
                                              {"maskset_sha256": "abc"})
    ja, jb = rec_a.to_json(), rec_b.to_json()
    assert ja["metrics"] == jb["metrics"] and ja["bins"] == jb["bins"]
    pd.testing.assert_frame_equal(df_a, df_b)
    m = rec_a.metrics
    assert set(m) == {"fid", "pids", "uids", "lpips", "precision", "recall", "kid", "psnr", "ssim", "l1"}
    for name, mv in m.items():
        assert mv.n == n
        assert mv.ci_low is not None and mv.ci_low <= mv.value + 1e-12 and mv.value <= mv.ci_high + 1e-12, name
    # independent references for the point values
    from matbench.metrics import fid, ids

    b = _fake_batches(n, [n])[0]
    assert m["fid"].value == fid.fid(b.features["inception_real"], b.features["inception_fake"], "mat")
    assert m["fid"].convention == "mat"
    assert m["fid"].extra["ci_method"] == "bias-corrected"
    ref = ids.pids_uids(b.features["inception_real"], b.features["inception_fake"])
    assert (m["pids"].value, m["uids"].value) == (ref["pids"], ref["uids"])
    assert m["psnr"].value == pytest.approx(np.mean([r["psnr"] for r in b.rows]))
    from matbench.metrics.prc import precision_recall

    pr = precision_recall(b.features["vgg_real"], b.features["vgg_fake"], k=3)
    assert (m["precision"].value, m["recall"].value) == pytest.approx((pr["precision"], pr["recall"]), abs=1e-12)
    # bins: counts add up, each bin's per-image mean is the mean of its images
    assert sum(x["n"] for x in rec_a.bins) == n and len(rec_a.bins) == 10
    assert any(x["n"] > 3 for x in rec_a.bins)
    ratios = np.array([r["hole_ratio"] for r in b.rows])
    lp = np.array([r["lpips"] for r in b.rows])
    for x in rec_a.bins:
        sel = (ratios >= x["lo"]) & (ratios < x["hi"])
        assert x["n"] == sel.sum()
        if x["n"] >= 2:
            assert x["metrics"]["lpips"].value == pytest.approx(lp[sel].mean())
            assert x["metrics"]["fid"].value == pytest.approx(
                fid.fid(b.features["inception_real"][sel], b.features["inception_fake"][sel]), rel=1e-8)
            assert "kid" in x["metrics"]
        if x["n"] > 3:  # precision/recall per bin: manifolds from the bin's own images
            ref = precision_recall(b.features["vgg_real"][sel], b.features["vgg_fake"][sel], k=3)
            assert x["metrics"]["precision"].value == pytest.approx(ref["precision"], abs=1e-12)
            assert x["metrics"]["recall"].value == pytest.approx(ref["recall"], abs=1e-12)
    assert rec_a.protocol["maskset_sha256"] == "abc" and rec_a.protocol["n_images"] == n
    assert rec_a.protocol["fid_convention"] == "mat" and rec_a.protocol["extractor_sha256"] == "f" * 64
    assert rec_a.smoke is False and "versions" in rec_a.provenance


def test_finalize_torch_fidelity_convention_and_too_few():
    rec, _ = _cheap_evaluator(fid_convention="torch-fidelity").finalize(_fake_batches(10, [10]), {})
    from matbench.metrics import fid

    b = _fake_batches(10, [10])[0]
    assert rec.metrics["fid"].value == fid.fid(b.features["inception_real"], b.features["inception_fake"],
                                               "torch-fidelity")
    assert rec.metrics["fid"].convention == "torch-fidelity"
    with pytest.raises(Exception, match="at least 2"):
        _cheap_evaluator().finalize(_fake_batches(1, [1]), {})


def test_batch_result_roundtrip(tmp_path):
    b = _fake_batches(5, [5])[0]
    b.rows[0]["hole_ratio"] = None
    b.save(tmp_path / "b.npz")
    c = E.BatchResult.load(tmp_path / "b.npz")
    assert c.ids == b.ids and c.rows == b.rows
    for k in b.features:
        np.testing.assert_array_equal(c.features[k], b.features[k])
        assert c.features[k].dtype == np.float64
    # features of float32 networks are stored as float32 (half the disk), and come back exactly
    f32 = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32).astype(np.float64)
    E.BatchResult(b.ids, b.rows, {"inception_real": f32}).save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as z:
        assert z["feat__inception_real"].dtype == np.float32
    np.testing.assert_array_equal(E.BatchResult.load(tmp_path / "c.npz").features["inception_real"], f32)


def test_process_batch_rows_and_real_feature_cache(tmp_path):
    seen = []

    def fwd(x):
        seen.append(x.shape[0])
        return x.float().mean(dim=(2, 3))

    ev = E.Evaluator(["fid", "psnr", "l1"], cache_dir=tmp_path)
    ev._networks["inception"] = F.FeatureExtractor("inception-v3-compat", fwd, 3, "c" * 64, smoke=False)
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (3, 3, 16, 16), generator=g, dtype=torch.uint8)
    hole = torch.zeros(3, 1, 16, 16, dtype=torch.bool)
    hole[:, :, :8] = True
    fake = torch.where(hole, 0, real).to(torch.uint8)
    fake[2] = 255 - real[2]  # a result that is not from this ground truth
    b = ev.process_batch(["a", "b", "c"], real, fake, hole)
    assert [r["pair_check"] for r in b.rows] == ["ok", "ok", "mismatch"]
    assert [r["hole_ratio"] for r in b.rows] == [0.5] * 3
    assert b.rows[0]["lpips"] is None and b.rows[0]["l1"] == pytest.approx(
        (real[0].double() - fake[0].double()).abs().mean().item() / 255)
    assert set(b.features) == {"inception_real", "inception_fake"}
    ev.process_batch(["a", "b", "c"], real, fake, None)  # real features now from the cache
    assert seen == [3, 3, 3]  # real, fake, fake


# --------------------------------------------------------------------------------------------- folders / CLI

def test_eval_cli_end_to_end_smoke(case, tmp_path, capsys):
    out = tmp_path / "out"
    rc, stdout, err = _run(["eval", "--results", str(case["res"]), "--gt", str(case["gt"]), "--masks",
                            str(case["masks"]), "--mask-polarity", "known=255", "--smoke", "--bootstrap", "20",
                            "--metrics", "fid,pids,uids,lpips,kid,psnr,ssim,l1",
                            "--workers", "0", "--device", "cpu", "-o", str(out)], capsys)
    assert rc == 0, err
    assert "SMOKE" in stdout
    data = json.loads((out / "metrics.json").read_text())
    assert data["smoke"] is True and data["schema"] == "matbench.result/1"
    # precision/recall (VGG16) is left out here to keep the test short; test_finalize_* covers it
    assert set(data["metrics"]) == {"fid", "pids", "uids", "lpips", "kid", "psnr", "ssim", "l1"}
    for name, mv in data["metrics"].items():
        assert mv["n"] == N and mv["ci_low"] is not None and mv["ci_high"] is not None, name
    assert data["metrics"]["fid"]["convention"] == "mat"
    assert sum(b["n"] for b in data["bins"]) == N and any(b["metrics"] for b in data["bins"])
    assert data["protocol"]["n_images"] == N and data["protocol"]["resolution"] == S
    assert data["protocol"]["extractor_sha256"].startswith("smoke-")
    assert data["provenance"]["weights"]["inception"]["smoke"] is True
    df = pd.read_csv(out / "per_image.csv")
    assert list(df.columns[:7]) == list(E.ROW_COLUMNS) and len(df) == N
    assert (df["pair_check"] == "ok").all()
    hole_area = [(3 * i + 3) * 20 / S**2 for i in range(N)]
    np.testing.assert_allclose(df["hole_ratio"], hole_area)
    # PSNR against a direct per-image computation
    from matbench.io import read_image

    g, r = read_image(case["gt"] / "img03.png").astype(float), read_image(case["res"] / "img03.png").astype(float)
    assert df.loc[3, "psnr"] == pytest.approx(10 * np.log10(255**2 / np.mean((g - r) ** 2)))


def test_ground_truth_features_are_reused_across_models(case, tmp_path, monkeypatch):
    calls = []

    def fake_get_extractor(name, device="cpu", smoke=False, path=None, **kw):
        def fwd(x):
            calls.append(x.shape[0])
            return x.float().mean(dim=(2, 3))
        return F.FeatureExtractor(name, fwd, 3, "d" * 64, smoke)

    monkeypatch.setattr(F, "get_extractor", fake_get_extractor)
    other = _make_case(tmp_path / "model2", seed=1)["res"]  # another "model": same ids, other results
    import shutil

    shutil.rmtree(other.parent / "gt")
    r1 = E.evaluate_folders(case["res"], case["gt"], metrics="fid", out_dir=tmp_path / "o1", progress=False,
                            n_bootstrap=5, smoke=True)
    assert sum(calls) == 2 * N
    r2 = E.evaluate_folders(other, case["gt"], metrics="fid", out_dir=tmp_path / "o2", progress=False,
                            n_bootstrap=5, smoke=True)
    assert sum(calls) == 3 * N  # only the new results went through the network
    assert r1.metrics["fid"].value != r2.metrics["fid"].value
    assert F.FeatureCache().count("inception-v3-compat@" + "d" * 64) == N


def test_mispairing_is_caught(case, tmp_path, capsys):
    # results paired with the wrong ground truths (MAT issue #86): shift names by one
    res = case["res"]
    files = sorted(res.glob("*.png"))
    for p in files:
        p.rename(p.with_suffix(".tmp"))
    for i, p in enumerate(files):
        p.with_suffix(".tmp").rename(files[(i + 1) % len(files)])
    argv = ["eval", "--results", str(res), "--gt", str(case["gt"]), "--masks", str(case["masks"]),
            "--mask-polarity", "known=255", "--metrics", "psnr,l1", "--workers", "0", "-o", str(tmp_path / "o")]
    rc, _, err = _run(argv, capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "img00" in err and "--allow-mismatch" in err and f"{N} of {N}" in err
    assert not (tmp_path / "o" / "metrics.json").exists()
    rc, _, err = _run(argv + ["--allow-mismatch"], capsys)
    assert rc == 0
    assert (pd.read_csv(tmp_path / "o" / "per_image.csv")["pair_check"] == "mismatch").all()


def test_wrong_mask_polarity_is_caught(case, tmp_path, capsys):
    rc, _, err = _run(["eval", "--results", str(case["res"]), "--gt", str(case["gt"]), "--masks", str(case["masks"]),
                       "--mask-polarity", "hole=255", "--metrics", "psnr", "-o", str(tmp_path / "o")], capsys)
    assert rc == 2 and "mask polarity" in err


def _bad(case, tmp_path, capsys, extra=(), metrics="psnr") -> str:
    rc, _, err = _run(["eval", "--results", str(case["res"]), "--gt", str(case["gt"]), "--metrics", metrics,
                       "--workers", "0", "-o", str(tmp_path / "o"), *extra], capsys)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("matbench: error: "), err
    assert not (tmp_path / "o" / "metrics.json").exists()
    return lines[0]


def test_missing_and_extra_ids(case, tmp_path, capsys):
    (case["res"] / "img05.png").unlink()
    save_png(case["res"] / "zzz.png", np.zeros((S, S, 3), np.uint8))
    err = _bad(case, tmp_path, capsys)
    assert "img05" in err and "zzz" in err and "8 results, 8 ground truths" in err


def test_count_mismatch(case, tmp_path, capsys):
    (case["res"] / "img05.png").unlink()
    err = _bad(case, tmp_path, capsys)
    assert "img05" in err and "7 results" in err


def test_size_mismatch_names_the_pair(case, tmp_path, capsys):
    save_png(case["res"] / "img02.png", np.zeros((S, S + 4, 3), np.uint8))
    err = _bad(case, tmp_path, capsys)
    assert "img02" in err and str(case["res"] / "img02.png") in err and "36x32" in err


def test_unreadable_file_is_named(case, tmp_path, capsys):
    (case["gt"] / "img04.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    err = _bad(case, tmp_path, capsys)
    assert str(case["gt"] / "img04.png") in err


def test_truncated_file_is_named(case, tmp_path, capsys):
    p = case["res"] / "img06.png"
    p.write_bytes(p.read_bytes()[:60])  # header intact, data cut: found while decoding, in a DataLoader worker
    err = _bad(case, tmp_path, capsys, ["--workers", "2"])
    assert str(p) in err


def test_fewer_than_two_images(tmp_path, capsys):
    d = _make_case(tmp_path, n=1)
    err = _bad(d, tmp_path, capsys)
    assert "at least 2" in err and str(d["gt"]) in err


def test_masks_need_a_polarity_or_maskset(case, tmp_path, capsys):
    err = _bad(case, tmp_path, capsys, ["--masks", str(case["masks"])])
    assert "--mask-polarity" in err and str(case["masks"]) in err


def test_missing_mask_is_listed(case, tmp_path, capsys):
    (case["masks"] / "img01.png").unlink()
    err = _bad(case, tmp_path, capsys, ["--masks", str(case["masks"]), "--mask-polarity", "known=255"])
    assert "img01" in err


def test_unknown_metric(case, tmp_path, capsys):
    err = _bad(case, tmp_path, capsys, metrics="fid,bogus")
    assert "bogus" in err


def test_maskset_dir_is_used(case, tmp_path, capsys):
    from matbench.data import maskset as M

    if not hasattr(M, "import_maskset"):
        pytest.skip("mask set import not available")
    ms_dir = tmp_path / "ms"
    try:
        M.import_maskset(case["masks"], ms_dir, polarity="known=255")
    except Exception as e:  # the importer's contract belongs to the data engineer
        pytest.skip(f"import_maskset failed on a plain folder: {e}")
    rc, _, err = _run(["eval", "--results", str(case["res"]), "--gt", str(case["gt"]), "--masks", str(ms_dir),
                       "--metrics", "psnr", "--workers", "0", "-o", str(tmp_path / "o")], capsys)
    assert rc == 0, err
    data = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert data["protocol"]["maskset_sha256"] == M.MaskSet.open(ms_dir).sha256
    assert sum(b["n"] for b in data["bins"]) == N


def test_mask_size_mismatch_is_named(case, tmp_path, capsys):
    save_png(case["masks"] / "img03.png", np.full((S + 2, S), 255, np.uint8))
    err = _bad(case, tmp_path, capsys, ["--masks", str(case["masks"]), "--mask-polarity", "known=255"])
    assert "img03" in err and "32x34" in err




@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_eval_cli_with_nvidia_torchscript_file(case, tmp_path, capsys):
    import hashlib

    torch.manual_seed(0)
    det = torch.jit.script(NvidiaStandIn())
    path = tmp_path / "inception-2015-12-05.pt"
    det.save(str(path))
    out = tmp_path / "o"
    rc, stdout, err = _run(["eval", "--results", str(case["res"]), "--gt", str(case["gt"]), "--metrics", "fid,pids",
                            "--inception", "inception-nvidia", "--inception-path", str(path), "--bootstrap", "10",
                            "--fid-convention", "torch-fidelity", "--workers", "0", "-o", str(out)], capsys)
    assert rc == 0, err
    assert "SMOKE" not in stdout
    data = json.loads((out / "metrics.json").read_text())
    assert data["smoke"] is False
    assert data["protocol"]["feature_extractor"] == "inception-nvidia"
    assert data["protocol"]["extractor_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # the FID equals the metric module on the detector's own features of the files
    from matbench.io import read_image
    from matbench.metrics.fid import fid

    def feats(folder):
        x = torch.stack([torch.from_numpy(read_image(p)).permute(2, 0, 1) for p in sorted(folder.glob("*.png"))])
        return det(x, return_features=True).detach().double().numpy()

    want = fid(feats(case["gt"]), feats(case["res"]), "torch-fidelity")
    # rank-3 features: the D x D eigenvalue route sums sqrt of ~2000 rounding-noise eigenvalues (~1e-5 relative);
    # our N x N route (N < D) does not, so agreement is checked to 1e-4
    assert data["metrics"]["fid"]["value"] == pytest.approx(want, rel=1e-4)
    assert data["metrics"]["fid"]["convention"] == "torch-fidelity"


def test_without_masks_mispairing_gives_a_warning(case, tmp_path, caplog):
    import logging

    other = _make_case(tmp_path / "other", seed=3)["gt"]  # unrelated images under the same ids
    with caplog.at_level(logging.WARNING, logger="matbench.evaluate"):
        rec = E.evaluate_folders(other, case["gt"], metrics="psnr", out_dir=tmp_path / "o", progress=False,
                                 n_bootstrap=0)
    assert "mis-paired" in caplog.text and rec.metrics["psnr"].ci_low is None
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="matbench.evaluate"):
        E.evaluate_folders(case["res"], case["gt"], metrics="psnr", out_dir=tmp_path / "o2", progress=False)
    assert "mis-paired" not in caplog.text


def test_registry_lists_every_metric_once_and_matches_the_cli_list():
    from matbench import metrics as M
    from matbench.commands import eval as eval_cmd

    outputs = M.outputs_of(M.known_metrics())
    assert len(outputs) == len(set(outputs)) and set(outputs) <= set(M.METRIC_INFO)
    assert tuple(eval_cmd.ALL_METRICS) == M.default_metrics() == E.ALL_METRICS
    assert M.default_metrics() == ("fid", "pids", "uids", "lpips", "pr", "kid", "psnr", "ssim", "l1")
    assert all(g.batch is not None or g.dataset is not None for g in M.groups_for(M.known_metrics()))
    assert M.extractors_for(["pr", "psnr"]) == ["vgg16"] and M.extractors_for(["fid", "kid"]) == ["inception"]


def test_bootstrap_time_is_reported_and_is_part_of_finalize():
    ev = _cheap_evaluator()
    rec, _ = ev.finalize(_fake_batches(30, [30]), {"model": "m"})
    t = rec.provenance["timings_s"]
    assert 0.0 < t["bootstrap"] <= t["finalize"] + 1e-3
    ev0 = _cheap_evaluator()
    ev0.n_bootstrap = 0  # no resampling: no bootstrap time
    assert ev0.finalize(_fake_batches(30, [30]), {"model": "m"})[0].provenance["timings_s"]["bootstrap"] == 0.0
