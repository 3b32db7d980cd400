"""Region metrics (matbench/metrics/region.py): every formula against an explicit loop over hand-made images and
masks (empty regions included), the seam band against a loop, copy-paste against a smooth fill on the seam, and
`matbench eval` end to end (metrics.json, per_image.csv, bins)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import matbench.metrics as M
from matbench.cli import main
from matbench.errors import InputError
from matbench.evaluate import Evaluator
from matbench.io import save_png
from matbench.metrics import region as RG
from matbench.metrics.pixel import gaussian_taps

H, W = 18, 21


def _masks() -> list[np.ndarray]:
    """Hand-made holes: a rectangle, a scattered set, none (empty hole), everything (empty known), a border strip."""
    rect = np.zeros((H, W), bool)
    rect[4:11, 6:15] = True
    rng = np.random.default_rng(1)
    scattered = rng.random((H, W)) < 0.3
    strip = np.zeros((H, W), bool)
    strip[:, :3] = True  # inside the 5-px SSIM border only
    return [rect, scattered, np.zeros((H, W), bool), np.ones((H, W), bool), strip]


def _images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    real = rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    fake = np.clip(real.astype(int) + rng.integers(-40, 41, real.shape), 0, 255).astype(np.uint8)
    return real, fake


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _seam_loop(hole: np.ndarray, w: int) -> np.ndarray:
    out = np.zeros_like(hole)
    for y in range(hole.shape[0]):
        for x in range(hole.shape[1]):
            win = hole[max(0, y - w):y + w + 1, max(0, x - w):x + w + 1]
            out[y, x] = bool((win != hole[y, x]).any())  # a pixel of the other kind within w (Chebyshev)
    return out


def _ssim_map_loop(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM map [H-10, W-10, 3] by explicit 11×11 window sums (MAT's constants)."""
    g = gaussian_taps()
    win = np.outer(g, g)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = a.astype(np.float64), b.astype(np.float64)
    out = np.zeros((a.shape[0] - 10, a.shape[1] - 10, 3))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for c in range(3):
                pa, pb = a[i:i + 11, j:j + 11, c], b[i:i + 11, j:j + 11, c]
                ma, mb = (win * pa).sum(), (win * pb).sum()
                va = (win * pa * pa).sum() - ma * ma
                vb = (win * pb * pb).sum() - mb * mb
                cov = (win * pa * pb).sum() - ma * mb
                out[i, j, c] = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return out


def _region_loop(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """PSNR, L1, SSIM over one region by loops over its pixels and channels (NaN when it is empty)."""
    se = ae = 0.0
    cnt = 0
    h, w = region.shape
    for y in range(h):
        for x in range(w):
            if region[y, x]:
                for c in range(3):
                    d = float(a[y, x, c]) - float(b[y, x, c])
                    se += d * d
                    ae += abs(d)
                    cnt += 1
    smap = _ssim_map_loop(a, b)
    ssum, scnt = 0.0, 0
    for y in range(5, h - 5):
        for x in range(5, w - 5):
            if region[y, x]:
                for c in range(3):
                    ssum += smap[y - 5, x - 5, c]
                    scnt += 1
    nan = float("nan")
    psnr = nan if cnt == 0 else (math.inf if se == 0 else 10 * math.log10(255 ** 2 / (se / cnt)))
    return {"psnr": psnr, "l1": nan if cnt == 0 else ae / cnt / 255, "ssim": nan if scnt == 0 else ssum / scnt}


def _same(a: float, b: float, rel: float = 1e-10) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=rel, abs=1e-12)


@pytest.mark.parametrize("width", [1, 3, 8])
def test_seam_band_matches_a_loop(width):
    holes = np.stack(_masks())
    got = RG.seam_band(torch.from_numpy(holes)[:, None], width)[:, 0].numpy()
    for i, h in enumerate(holes):
        assert (got[i] == _seam_loop(h, width)).all()
    assert not got[2].any() and not got[3].any()  # no hole, or no known pixel: no seam
    assert RG.SEAM_WIDTH == 8


def test_pixel_region_metrics_match_loops():
    holes = _masks()
    real, fake = _images(len(holes))
    fake[1] = real[1]  # identical images: PSNR +inf in every non-empty region
    masks = RG.region_masks(torch.from_numpy(np.stack(holes))[:, None])
    got = RG.pixel_region_metrics(_t(real), _t(fake), masks)
    for i, h in enumerate(holes):
        regions = {"hole": h, "known": ~h, "seam": _seam_loop(h, RG.SEAM_WIDTH)}
        for r, mask in regions.items():
            ref = _region_loop(real[i], fake[i], mask)
            for k in ("psnr", "l1", "ssim"):
                assert _same(got[f"{k}_{r}"][i], ref[k]), (i, r, k, got[f"{k}_{r}"][i], ref[k])
    assert np.isnan(got["psnr_hole"][2]) and np.isnan(got["psnr_known"][3])  # empty regions
    assert np.isnan(got["ssim_hole"][4]) and not np.isnan(got["psnr_hole"][4])  # strip outside the SSIM crop
    assert got["psnr_hole"][1] == math.inf and got["l1_hole"][1] == 0.0


def test_ssim_map_backends_agree():
    # the torch path runs on GPUs; on CPU the cv2 path: both against the loop
    real, fake = _images(2, seed=6)
    ref = np.stack([_ssim_map_loop(real[i], fake[i]).transpose(2, 0, 1) for i in range(2)])
    np.testing.assert_allclose(RG.ssim_map(_t(real), _t(fake)).numpy(), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(RG._ssim_map_torch(_t(real), _t(fake)).numpy(), ref, rtol=1e-10, atol=1e-12)


def test_known_region_of_an_empty_hole_is_the_whole_image_metric():
    from matbench.metrics.pixel import pixel_metrics_batch

    real, fake = _images(3, seed=4)
    masks = RG.region_masks(torch.zeros(3, 1, H, W, dtype=torch.bool))
    got = RG.pixel_region_metrics(_t(real), _t(fake), masks)
    whole = pixel_metrics_batch(_t(real), _t(fake), backend="torch")
    for k in ("psnr", "ssim", "l1"):
        np.testing.assert_allclose(got[f"{k}_known"], whole[k], rtol=1e-12)


def test_lpips_region_is_the_spatial_map_averaged(tmp_path, monkeypatch):
    import lpips

    monkeypatch.setenv("MATBENCH_CACHE", str(tmp_path / "cache"))
    holes = _masks()
    real, fake = _images(len(holes), seed=2)
    real, fake = np.repeat(np.repeat(real, 2, 1), 2, 2), np.repeat(np.repeat(fake, 2, 1), 2, 2)  # 36×42
    hole = np.repeat(np.repeat(np.stack(holes), 2, 1), 2, 2)
    ev = Evaluator(["lpips_hole", "lpips_known", "lpips_seam"], smoke=True, device="cpu", cache_dir=False)
    res = ev.process_batch([f"i{k}" for k in range(len(holes))], _t(real), _t(fake),
                           torch.from_numpy(hole)[:, None])
    # independent: the lpips package itself with spatial=True and the same weights
    ref_net = lpips.LPIPS(net="alex", version="0.1", spatial=True, pnet_rand=True, verbose=False).eval()
    ref_net.load_state_dict(ev.lpips.model.state_dict())
    with torch.no_grad():
        maps = ref_net(_t(real).float() / 127.5 - 1, _t(fake).float() / 127.5 - 1)[:, 0].double().numpy()
    for i, row in enumerate(res.rows):
        regions = {"hole": hole[i], "known": ~hole[i], "seam": _seam_loop(hole[i], RG.SEAM_WIDTH)}
        for r, mask in regions.items():
            vals = [maps[i, y, x] for y in range(mask.shape[0]) for x in range(mask.shape[1]) if mask[y, x]]
            ref = float(np.mean(vals)) if vals else float("nan")
            assert (math.isnan(ref) and math.isnan(row[f"lpips_{r}"])) or row[f"lpips_{r}"] == pytest.approx(
                ref, rel=1e-5), (i, r)
    assert ev.lpips.model.spatial is False  # the scalar LPIPS is untouched


def _smooth_image(rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:64, 0:64].astype(np.float64)
    base = 128 + 90 * np.sin(x / 9.0) * np.cos(y / 11.0)
    img = base[..., None] + np.array([0.0, 20.0, -20.0]) + rng.normal(0, 6, (64, 64, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def test_copy_paste_scores_worse_on_the_seam_than_a_smooth_fill():
    import cv2

    rng = np.random.default_rng(7)
    gt = _smooth_image(rng)
    hole = np.zeros((64, 64), bool)
    hole[20:44, 20:44] = True
    paste = gt.copy()
    paste[20:44, 20:44] = gt[20:44, 36:60]  # known pixels from elsewhere copied into the hole: texture, wrong place
    smooth = gt.copy()
    blurred = cv2.GaussianBlur(gt, (0, 0), 4.0)
    smooth[hole] = blurred[hole]  # a smooth (blurred) fill
    real = _t(np.stack([gt, gt]))
    fake = _t(np.stack([paste, smooth]))
    masks = RG.region_masks(torch.from_numpy(np.stack([hole, hole]))[:, None])
    got = RG.pixel_region_metrics(real, fake, masks)
    assert got["psnr_seam"][0] < got["psnr_seam"][1]
    assert got["l1_seam"][0] > got["l1_seam"][1]
    assert got["ssim_seam"][0] < got["ssim_seam"][1]


def test_region_metrics_refuse_an_evaluation_without_masks():
    real, fake = _images(2)
    ev = Evaluator(["psnr", "psnr_hole"], device="cpu", cache_dir=False)
    with pytest.raises(InputError, match="psnr_hole: region metrics need masks"):
        ev.process_batch(["a", "b"], _t(real), _t(fake))


def test_empty_regions_are_left_out_of_the_mean_and_counted():
    holes = _masks()
    real, fake = _images(len(holes), seed=3)
    ev = Evaluator(["psnr_hole", "psnr_known", "psnr_seam", "psnr"], device="cpu", cache_dir=False, n_bootstrap=30)
    b = ev.process_batch([f"i{k}" for k in range(len(holes))], _t(real), _t(fake),
                         torch.from_numpy(np.stack(holes))[:, None])
    rec, df = ev.finalize([b], job={})
    ph = df["psnr_hole"].to_numpy()
    assert np.isnan(ph[2]) and np.isfinite(np.delete(ph, 2)).all()
    m = rec.metrics["psnr_hole"]
    assert m.value == pytest.approx(np.mean(np.delete(ph, 2)), rel=1e-12)
    assert m.n == len(holes) - 1 and m.extra == {"region": "hole", "n_empty": 1}
    assert m.ci_low <= m.value <= m.ci_high
    assert rec.metrics["psnr_known"].extra["n_empty"] == 1
    assert rec.metrics["psnr_seam"].extra == {"region": "seam", "seam_width": 8, "n_empty": 2}
    assert rec.metrics["psnr"].extra == {} and rec.metrics["psnr"].n == len(holes)  # built-ins as before


def test_a_spec_asks_for_region_metrics_and_fd_inf(tmp_path):
    from matbench.spec import parse_spec

    spec = parse_spec({"name": "t", "output": str(tmp_path / "run"),
                       "datasets": [{"name": "d", "preset": "folder", "path": str(tmp_path)}],
                       "masksets": [{"name": "m", "kind": "mat-large"}], "models": [{"name": "opencv-telea"}],
                       "resolutions": [256], "metrics": ["fid_inf", "psnr_hole", "lpips_seam", "fid"]},
                      base_dir=tmp_path, check_paths=False)
    assert spec.metrics == ["fid_inf", "psnr_hole", "lpips_seam", "fid"]


def test_region_metrics_are_registered():
    reg = M.registered()
    assert set(RG.REGION_METRICS) <= set(M.known_metrics())
    assert reg["psnr_hole"].label == "PSNR (hole)" and reg["lpips_seam"].label == "LPIPS (seam)"
    assert reg["psnr_hole"].higher_is_better and not reg["l1_known"].higher_is_better
    assert all(reg[m].per_image and reg[m].order >= 120 and reg[m].group == "region" for m in RG.REGION_METRICS)
    assert not set(RG.REGION_METRICS) & set(M.default_metrics())


# --------------------------------------------------------------------------------------------- end to end

N, S = 8, 32


def _folder(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(11)
    d = {k: root / k for k in ("gt", "res", "masks")}
    for i in range(N):
        g = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
        hole = np.zeros((S, S), bool)
        if i:  # im0 has no hole: psnr_hole and l1_hole leave it out
            hole[2:6 + 3 * i, 4:28] = True
        r = np.clip(g.astype(int) + rng.integers(-30, 31, g.shape), 0, 255).astype(np.uint8)  # not composited
        save_png(d["gt"] / f"im{i}.png", g)
        save_png(d["res"] / f"im{i}.png", r)
        save_png(d["masks"] / f"im{i}.png", np.where(hole, 0, 255).astype(np.uint8))
    return d


def test_eval_region_metrics_end_to_end(tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.setenv("MATBENCH_CACHE", str(tmp_path / "cache"))
    d = _folder(tmp_path)
    out = tmp_path / "out"
    rc = main(["eval", "--results", str(d["res"]), "--gt", str(d["gt"]), "--masks", str(d["masks"]),
               "--mask-polarity", "known=255", "--metrics", "psnr_hole,psnr_known,l1_hole,lpips_seam", "--smoke",
               "--device", "cpu", "--bootstrap", "50", "--no-cache", "--allow-mismatch", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    rec = json.loads((out / "metrics.json").read_text())
    df = pd.read_csv(out / "per_image.csv")
    assert {"psnr_hole", "psnr_known", "l1_hole", "lpips_seam"} <= set(df.columns)
    assert "psnr_seam" not in df.columns  # region columns only when requested
    ref = {}
    for i in range(N):
        g = np.asarray(Image.open(d["gt"] / f"im{i}.png"))
        r = np.asarray(Image.open(d["res"] / f"im{i}.png"))
        hole = np.asarray(Image.open(d["masks"] / f"im{i}.png")) < 128
        ref[f"im{i}"] = {"hole": _region_loop(g, r, hole), "known": _region_loop(g, r, ~hole)}
    for _, row in df.iterrows():
        assert _same(row["psnr_hole"], ref[row["id"]]["hole"]["psnr"], rel=1e-7)  # per_image.csv keeps 8 decimals
        assert _same(row["l1_hole"], ref[row["id"]]["hole"]["l1"], rel=1e-7)  # per_image.csv keeps 8 decimals
        assert _same(row["psnr_known"], ref[row["id"]]["known"]["psnr"], rel=1e-7)  # per_image.csv keeps 8 decimals
    assert np.isnan(df.loc[df["id"] == "im0", "psnr_hole"]).all()
    m = rec["metrics"]["psnr_hole"]
    assert m["n"] == N - 1 and m["extra"]["n_empty"] == 1
    assert m["value"] == pytest.approx(np.mean([ref[f"im{i}"]["hole"]["psnr"] for i in range(1, N)]), rel=1e-9)
    assert rec["metrics"]["psnr_known"]["n"] == N and rec["metrics"]["lpips_seam"]["extra"]["seam_width"] == 8
    binned = [b for b in rec["bins"] if b["n"] >= 2]
    assert binned and all("psnr_hole" in b["metrics"] and "lpips_seam" in b["metrics"] for b in binned)
    for b in binned:
        ids = df.loc[df["bin"] == b["label"], "id"]
        want = [ref[i]["hole"]["l1"] for i in ids if not math.isnan(ref[i]["hole"]["l1"])]
        assert b["metrics"]["l1_hole"]["value"] == pytest.approx(np.mean(want), rel=1e-9)
    assert rec["provenance"]["weights"]["lpips"]["smoke"] is True  # the LPIPS maps' network is recorded
    assert main(["table", str(out)]) == 0
    assert "PSNR (hole)" in capsys.readouterr().out
