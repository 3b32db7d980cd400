"""fid_local (crop geometry, crops, the metric against fd() on hand-made crop features) and sFID (the spatial
output of the Inception pass, its NHWC flattening, the guided-diffusion formula), and both through `eval`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import linalg

from matbench import features as F
from matbench.cli import main
from matbench.evaluate import BatchResult, Evaluator
from matbench.features.base import FeatureExtractor, FeatureOutput, nhwc_flat
from matbench.features.inception_tf import SPATIAL_DIM
from matbench.io import save_png
from matbench.metrics import fd as fdm
from matbench.metrics import local as LO
from matbench.metrics import registry as R

# ------------------------------------------------------------------------------------------- crop geometry


def _hole(h: int, w: int, rows: tuple[int, int] | None, cols: tuple[int, int] | None) -> torch.Tensor:
    m = torch.zeros(1, 1, h, w, dtype=torch.bool)
    if rows is not None:
        m[0, 0, rows[0]:rows[1], cols[0]:cols[1]] = True
    return m


# (H, W, hole rows [a, b), hole cols [a, b)) -> (top, left, side), worked out by hand from the module doc
BOXES = [
    ((300, 400, (150, 160), (200, 210)), (91, 141, 128)),  # small hole inside: 128 square centred (150 - 59)
    ((300, 400, (10, 20), (20, 50)), (0, 0, 128)),  # near the top-left corner: shifted in
    ((300, 400, (290, 300), (390, 400)), (172, 272, 128)),  # at the bottom-right border: 300-128, 400-128
    ((300, 400, (0, 200), (100, 150)), (0, 25, 200)),  # tall hole: its own bounding square, 100 - (200-50)//2
    ((300, 400, (0, 10), (0, 350)), (0, 25, 300)),  # wider than the image is high: cut to 300, centred (25)
    ((300, 400, (5, 6), (7, 8)), (0, 0, 128)),  # one pixel at the corner
    ((300, 400, (200, 201), (300, 301)), (137, 237, 128)),  # one pixel: 200 - 127//2 = 137
    ((64, 80, (10, 12), (70, 80)), (0, 16, 64)),  # image under 128 px: the short side, left clipped to 80-64
]


@pytest.mark.parametrize(("case", "want"), BOXES)
def test_crop_boxes_by_hand(case, want):
    h, w, rows, cols = case
    has, boxes = LO.crop_boxes(_hole(h, w, rows, cols))
    assert has.tolist() == [True] and boxes[0].tolist() == list(want)
    top, left, side = want
    # the crop is inside the image and holds the hole whenever the hole fits in it
    assert 0 <= top <= h - side and 0 <= left <= w - side
    if max(rows[1] - rows[0], cols[1] - cols[0]) <= side:
        assert top <= rows[0] and rows[1] <= top + side and left <= cols[0] and cols[1] <= left + side


def test_crop_boxes_of_a_batch_and_an_image_without_hole():
    hole = torch.cat([_hole(300, 400, None, None), _hole(300, 400, (150, 160), (200, 210)),
                      _hole(300, 400, (290, 300), (390, 400))])
    has, boxes = LO.crop_boxes(hole)
    assert has.tolist() == [False, True, True]
    assert boxes.tolist() == [[0, 0, 0], [91, 141, 128], [172, 272, 128]]


def test_crop_images_are_the_slices_resized_by_the_convention():
    g = torch.Generator().manual_seed(1)
    img = torch.randint(0, 256, (3, 3, 150, 170), dtype=torch.uint8, generator=g)
    boxes = torch.tensor([[5, 9, 128], [22, 42, 128], [0, 3, 150]])
    for conv in ("legacy-tf", "legacy-pytorch"):
        got = LO.crop_images(img, boxes, 64, conv)
        for i, (t, lft, s) in enumerate(boxes.tolist()):
            ref = F.resize(img[i:i + 1, :, t:t + s, lft:lft + s].contiguous(), 64, conv).round().to(torch.uint8)
            assert torch.equal(got[i:i + 1], ref)


# ------------------------------------------------------------------------------------------- fid_local


@pytest.fixture(scope="module")
def local_batch():
    rng = np.random.default_rng(5)
    n, h, w = 4, 96, 112
    real = torch.from_numpy(rng.integers(0, 256, (n, 3, h, w), dtype=np.uint8))
    fake = real.clone()
    hole = torch.zeros(n, 1, h, w, dtype=torch.bool)
    spans = [None, ((10, 30), (5, 40)), ((60, 96), (80, 112)), ((40, 41), (50, 51))]  # image 0: no hole
    for i, sp in enumerate(spans):
        if sp:
            (a, b), (c, d) = sp
            hole[i, 0, a:b, c:d] = True
            fake[i, :, a:b, c:d] = torch.from_numpy(rng.integers(0, 256, (3, b - a, d - c), dtype=np.uint8))
    return real, fake, hole


class _PoolNet(FeatureExtractor):
    """A cheap stand-in with inception-v3-compat's name (so its input size 299 and legacy-tf resize): a fixed
    projection of 8×8-pooled pixels. The Inception itself is tested elsewhere; this tests what it is given."""

    def __init__(self) -> None:
        w = torch.from_numpy(np.random.default_rng(0).normal(size=(192, 16))).float()

        def forward(x: torch.Tensor) -> torch.Tensor:
            assert x.shape[-2:] == (299, 299)
            return torch.nn.functional.adaptive_avg_pool2d(x.float(), 8).flatten(1) @ w

        super().__init__("inception-v3-compat", forward, 16, "test", smoke=True)


def test_fid_local_is_fd_of_hand_made_crop_features(local_batch):
    real, fake, hole = local_batch
    ev = Evaluator(["fid_local"], smoke=True, device="cpu", cache_dir=False, n_bootstrap=20,
                   fid_convention="torch-fidelity")
    net = ev._networks["inception"] = _PoolNet()
    b = ev.process_batch([f"i{k}" for k in range(4)], real, fake, hole)
    fr, ff = b.features["inception@local_real"], b.features["inception@local_fake"]
    assert np.isnan(fr[0]).all() and np.isnan(ff[0]).all() and not np.isnan(fr[1:]).any()
    # by hand: image h=96 < 128, so every square is 96 px: (top, left) from the module doc's formulas;
    # image 3, one pixel at (40, 50): top 40 - 95 // 2 = -7 -> 0, left 50 - 47 = 3
    squares = {1: (0, 0), 2: (0, 112 - 96), 3: (0, 3)}
    for side, imgs, got in (("real", real, fr), ("fake", fake, ff)):
        crops = torch.cat([F.resize(imgs[i:i + 1, :, t:t + 96, lft:lft + 96].contiguous(), 299, "legacy-tf")
                           .round().to(torch.uint8) for i, (t, lft) in squares.items()])
        np.testing.assert_allclose(got[1:], net(crops), rtol=1e-6, err_msg=side)
    rec, _ = ev.finalize([b], job={})
    m = rec.metrics["fid_local"]
    # N < D: fd_interval computes the N×N form, fd the D×D one
    assert m.value == pytest.approx(fdm.fd(fr[1:], ff[1:], "torch-fidelity"), rel=1e-6)
    assert m.n == 3 and m.extra["n_empty"] == 1 and m.extra["extractor"] == "inception-v3-compat@local"
    assert m.convention == "torch-fidelity"
    # a bin with one hole-free image and fewer than 2 crops has no value (not an error)
    rec2, _ = ev.finalize([BatchResult(b.ids[:2], b.rows[:2], {k: v[:2] for k, v in b.features.items()})], job={})
    assert np.isnan(rec2.metrics["fid_local"].value) and rec2.metrics["fid_local"].n == 1


def test_fid_local_refuses_an_evaluation_without_masks(local_batch):
    real, fake, _ = local_batch
    ev = Evaluator(["fid_local"], smoke=True, device="cpu", cache_dir=False)
    with pytest.raises(Exception, match="needs masks"):
        ev.process_batch(["a", "b", "c", "d"], real, fake, None)


# ------------------------------------------------------------------------------------------- sFID


def test_nhwc_flattening_matches_a_loop():
    x = torch.randn(2, 9, 3, 4)
    got = nhwc_flat(x, 7)
    ref = torch.empty(2, 3 * 4 * 7)
    for n in range(2):
        k = 0
        for hh in range(3):
            for ww in range(4):
                for c in range(7):  # TF's [N, H, W, C][..., :7].reshape(N, -1): channel fastest
                    ref[n, k] = x[n, c, hh, ww]
                    k += 1
    assert torch.equal(got, ref)


def test_spatial_output_is_mixed_6d_1x1_of_the_same_pass():
    fx = F.get_extractor("inception-v3-compat", smoke=True, batch_size=8)
    x = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (2, 3, 64, 64), dtype=np.uint8))
    seen = []
    mod = fx.module.module.Mixed_6d.branch1x1
    h = mod.register_forward_hook(lambda _m, _i, y: seen.append(y.clone()))
    try:
        out = fx.extract(x, ("", "spatial"))
    finally:
        h.remove()
    assert fx.calls == 1 and len(seen) == 1  # one forward pass gives both outputs
    assert seen[0].shape == (2, 192, 17, 17) and out["spatial"].shape == (2, SPATIAL_DIM) == (2, 2023)
    np.testing.assert_array_equal(out["spatial"], nhwc_flat(seen[0], 7).numpy().astype(np.float64))
    np.testing.assert_array_equal(out[""], fx(x))
    assert "spatial" in {o.name for o in F.get_spec("pt-inception").outputs}


def _guided_diffusion_fd(a: np.ndarray, b: np.ndarray, bias: bool = False, eps: float = 1e-6) -> float:
    """evaluations/evaluator.py of openai/guided-diffusion (FIDStatistics.frechet_distance), written out."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False, bias=bias), np.cov(b, rowvar=False, bias=bias)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1.dot(s2))  # the evaluator's disp=False only also returns an error estimate
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + off).dot(s2 + off))
    covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("convention", ["torch-fidelity", "mat"])
def test_sfid_is_the_guided_diffusion_formula(convention):
    rng = np.random.default_rng(4)
    n, d = 120, 40
    real = rng.normal(size=(n, d))
    fake = 0.8 * real + rng.normal(0.1, 0.6, size=(n, d))
    ids = [f"i{k}" for k in range(n)]
    ev = Evaluator(["sfid"], smoke=True, device="cpu", cache_dir=False, n_bootstrap=10, fid_convention=convention)
    rows = [{"id": i, "hole_ratio": 0.3, "pair_check": "unchecked"} for i in ids]
    rec, _ = ev.finalize([BatchResult(ids, rows, {"inception:spatial_real": real, "inception:spatial_fake": fake})],
                         job={})
    m = rec.metrics["sfid"]
    assert m.value == pytest.approx(_guided_diffusion_fd(real, fake, bias=convention == "mat"), rel=1e-7)
    assert m.extra["extractor"] == "inception-v3-compat:spatial" and m.n == n and m.convention == convention


def test_extractor_notation():
    assert R.split_extractor("inception:spatial") == ("inception", "spatial", "")
    assert R.split_extractor("inception@local") == ("inception", "", "local")
    assert R.split_extractor("dinov2-vitl14") == ("dinov2-vitl14", "", "")
    assert F.feature_key_name("inception:spatial_real", "pt-inception") == "pt-inception:spatial.real"
    assert F.feature_key_name("inception@local_fake", "inception-v3-compat") == "inception-v3-compat@local.fake"
    reg = R.registered()
    assert reg["sfid"].extractor == "inception:spatial" and reg["fid_local"].extractor == "inception@local"
    assert not reg["sfid"].higher_is_better and not reg["fid_local"].higher_is_better
    assert not {"sfid", "fid_local"} & set(R.default_metrics())


# ------------------------------------------------------------------------------------------- CLI


class _TinyNet(torch.nn.Module):
    """A 1x1 convolution on 4x4-pooled pixels: features 8*4*4, a hookable inner module for the spatial output."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.nn.functional.adaptive_avg_pool2d(x.float() / 255, 4)).flatten(1)


def _tiny_extractor(name, *_a, **_k) -> FeatureExtractor:
    """A stand-in for the smoke Inception in the CLI test (a real Inception pass per image costs seconds on 2
    shared cores; the Inception and its spatial output are tested above): same name, so the same crop size,
    resize convention and record fields."""
    net = _TinyNet()
    fx = FeatureExtractor(name, net, 128, "smoke-tiny", smoke=True)
    fx.outputs, fx.module = {"spatial": FeatureOutput("spatial", 7 * 16, "conv", 7)}, net
    return fx


def test_eval_hole_metrics_end_to_end_then_table_compare_check(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(F, "get_extractor", _tiny_extractor)
    monkeypatch.setenv("MATBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MATBENCH_HISTORY", str(tmp_path / "history.db"))
    rng = np.random.default_rng(8)
    d = {k: tmp_path / k for k in ("gt", "a", "b", "masks")}
    for i in range(4):
        g = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        hole = np.zeros((48, 48), bool)
        hole[4 + 2 * i:20 + 4 * i, 6:30] = True
        a = g.copy()
        a[hole] = g[~hole].mean(0).astype(np.uint8)  # mean fill
        b = g.copy()
        b[hole] = rng.integers(0, 256, (int(hole.sum()), 3), dtype=np.uint8)  # noise fill
        for k, im in (("gt", g), ("a", a), ("b", b)):
            save_png(d[k] / f"im{i}.png", im)
        save_png(d["masks"] / f"im{i}.png", np.where(hole, 0, 255).astype(np.uint8))
    names = "psnr_hole,psnr_known,l1_hole,lpips_seam,fid_local,fid_inf,sfid"
    for side in ("a", "b"):
        rc = main(["eval", "--results", str(d[side]), "--gt", str(d["gt"]), "--masks", str(d["masks"]),
                   "--mask-polarity", "known=255", "--metrics", names, "--smoke", "--device", "cpu",
                   "--bootstrap", "20", "--save-features", "--name", "m", "-o", str(tmp_path / f"out_{side}")])
        assert rc == 0, capsys.readouterr().err
    rec = json.loads((tmp_path / "out_a" / "metrics.json").read_text())
    assert set(names.split(",")) <= set(rec["metrics"])
    assert rec["metrics"]["sfid"]["extra"]["extractor"] == "inception-v3-compat:spatial"
    assert any("fid_local" in b["metrics"] and "sfid" in b["metrics"] for b in rec["bins"])
    capsys.readouterr()
    assert main(["table", str(tmp_path / "out_a")]) == 0
    out = capsys.readouterr().out
    assert "FID (local)" in out and "sFID" in out and "LPIPS (seam)" in out
    assert main(["compare", str(tmp_path / "out_a"), str(tmp_path / "out_b"), "--json", "--n-resamples", "200"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    assert {"fid_local", "sfid", "psnr_hole"} <= set(cmp["metrics"]), cmp.get("skipped")
    assert cmp["metrics"]["psnr_hole"]["delta"] < 0  # noise fill is worse in the hole
    rc = main(["check", str(tmp_path / "out_b"), "--baseline", str(tmp_path / "out_a")])
    assert rc == 1  # the noise fill regresses the hole metrics
    assert "psnr_hole" in capsys.readouterr().out


def test_a_spec_asks_for_the_hole_metrics(tmp_path):
    from matbench.spec import parse_spec

    names = ["psnr_hole", "psnr_known", "l1_hole", "lpips_seam", "fid_local", "fid_inf", "sfid"]
    spec = parse_spec({"name": "t", "output": str(tmp_path / "run"),
                       "datasets": [{"name": "d", "preset": "folder", "path": str(tmp_path)}],
                       "masksets": [{"name": "m", "kind": "mat-large"}], "models": [{"name": "opencv-telea"}],
                       "resolutions": [256], "metrics": names}, base_dir=tmp_path, check_paths=False)
    assert set(spec.metrics) == set(names)
    ev = Evaluator(spec.metrics, smoke=True, cache_dir=False)
    assert set(ev._extractors) == {"inception", "inception@local", "inception:spatial"}
    assert ev._bases == ["inception"]  # one network for FD∞, the crops and the spatial features
