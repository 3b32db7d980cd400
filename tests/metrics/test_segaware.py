"""LaMa's segmentation-aware metrics (matbench/metrics/segaware.py): the formulas against LaMa's own classes run on
tiny inputs with a fake segmentation (tests/fixtures/ade20k/segaware.*, made by scripts/make_segaware_golden.py),
against explicit loops, and `matbench eval --metrics seg_ssim,seg_lpips,seg_fid` end to end (smoke networks)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from matbench.cli import main
from matbench.errors import InputError
from matbench.evaluate import Evaluator
from matbench.features.segmentation import CLASS_NAMES
from matbench.io import save_png
from matbench.metrics import registry as R
from matbench.metrics import segaware as S
from matbench.metrics.bins import assign_bins
from matbench.metrics.fd import fd

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "ade20k"


@pytest.fixture(scope="module")
def official() -> tuple[dict, dict]:
    with np.load(FIX / "segaware.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads((FIX / "segaware.json").read_text())


def _classes_only(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("mean", "std")}


def _close(got: dict, want: dict, rel: float, abs_tol: float = 1e-12) -> None:
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=rel, abs=abs_tol), k


def _counts_loop(class_map: np.ndarray, hole: np.ndarray) -> np.ndarray:
    n, h, w = class_map.shape
    out = np.zeros((n, 150), dtype=np.int64)
    for i in range(n):
        for y in range(h):
            for x in range(w):
                if hole[i, 0, y, x]:
                    out[i, class_map[i, y, x]] += 1
    return out


def test_hole_class_pixels_match_a_loop(official):
    a, _ = official
    got = S.hole_class_pixels(torch.from_numpy(a["target_map"]), torch.from_numpy(a["hole"]))
    assert np.array_equal(got, _counts_loop(a["target_map"], a["hole"]))


def test_per_class_is_the_hand_computed_weighted_mean():
    counts = np.zeros((2, 150), dtype=np.int64)
    counts[0, 0], counts[1, 0], counts[1, 2] = 2, 1, 3
    got = S.per_class(counts, np.array([0.5, 1.0]))
    assert set(got) == {"wall", "sky"}  # classes absent from every hole are left out
    assert got["wall"] == pytest.approx((2 * 0.5 + 1 * 1.0) / (3 + 1e-3), rel=1e-15)
    assert got["sky"] == pytest.approx(3 * 1.0 / (3 + 1e-3), rel=1e-15)


def test_ssim_lpips_shares_match_official(official):
    a, ref = official
    assert np.array_equal(assign_bins(a["hole"].reshape(len(a["hole"]), -1).mean(1)), ref["groups"])
    ssim = S.lama_ssim(torch.from_numpy(a["real"]), torch.from_numpy(a["fake"]))
    assert np.abs(ssim - np.array(ref["ssim_values"])).max() <= 1e-6
    counts = S.hole_class_pixels(torch.from_numpy(a["target_map"]), torch.from_numpy(a["hole"]))
    groups = np.array(ref["groups"])
    # LaMa keeps SSIM values in float32 (its mean and std too): 1e-6 there, float64 values otherwise
    for key, values, tol in (("segm_ssim", np.array(ref["ssim_values"]), 1e-6), ("segm_values", a["values"], 1e-9)):
        total = ref[key]["total"]
        assert values.mean() == pytest.approx(total["mean"], rel=tol)
        assert values.std() == pytest.approx(total["std"], rel=max(tol, 1e-5))
        _close(S.per_class(counts, values), _classes_only(total), tol)
        for g, want in ref[key]["groups"].items():
            idx = np.flatnonzero(groups == int(g))
            _close(S.per_class(counts[idx], values[idx]), _classes_only(want), tol)


def test_fid_and_its_shares_match_official(official):
    a, ref = official
    real, fake = a["feats_real"], a["feats_fake"]
    counts = S.hole_class_pixels(torch.from_numpy(a["target_map"]), torch.from_numpy(a["hole"]))
    total = ref["segm_fid"]["total"]
    # LaMa: numpy.cov (1/(N-1)) and scipy's sqrtm; ours: the eigen form of metrics.fd
    assert fd(real, fake, "torch-fidelity") == pytest.approx(total["mean"], rel=1e-9)
    _close(S.per_class(counts, S.fid_shares(real, fake, "torch-fidelity")), _classes_only(total), 1e-6)
    groups = np.array(ref["groups"])
    for g, want in ref["segm_fid"]["groups"].items():
        idx = np.flatnonzero(groups == int(g))
        if idx.size < 2:
            assert math.isnan(want["mean"])  # LaMa: no FID for a group of one image (matbench: no bin metrics)
            continue
        # fewer images than dimensions: singular covariances, where scipy's sqrtm is good to about 1e-8
        assert fd(real[idx], fake[idx], "torch-fidelity") == pytest.approx(want["mean"], rel=1e-7)
        shares = S.fid_shares(real[idx], fake[idx], "torch-fidelity")
        _close(S.per_class(counts[idx], shares), _classes_only(want), 1e-6, 1e-7 * want["mean"])


def test_fid_share_is_one_distance_per_image_written_out():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(9, 3)), rng.normal(size=(9, 3)) + 0.5
    want = []
    for i in range(9):
        sub = fake.copy()
        sub[i] = real[i]
        want.append(fd(real, fake, "mat") - fd(real, sub, "mat"))
    assert np.allclose(S.fid_shares(real, fake, "mat"), want, rtol=1e-9, atol=1e-12)


def test_registered_with_their_groups():
    reg = R.registered()
    assert {m: reg[m].group for m in S.SEG_METRICS} == {"seg_ssim": "seg_pair", "seg_lpips": "seg_pair",
                                                        "seg_fid": "seg_fid"}
    assert reg["seg_ssim"].higher_is_better and not reg["seg_fid"].higher_is_better
    assert R.extractors_for(["seg_ssim"]) == [] and R.extractors_for(["seg_fid"]) == ["inception"]
    assert not reg["seg_fid"].default  # not in the default set: a 51M-parameter network per image


def test_refused_without_masks():
    ev = Evaluator(["seg_ssim"], smoke=True, device="cpu", cache_dir=False)
    x = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(InputError, match="need masks"):
        ev.process_batch(["a", "b"], x, x)


def _write_set(tmp_path: Path, n: int = 6) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    d = {k: tmp_path / k for k in ("gt", "res", "masks")}
    for p in d.values():
        p.mkdir()
    for i in range(n):
        g = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        hole = np.zeros((40, 48), bool)
        hole[5:5 + 4 * (i + 1), 6:30] = True  # hole ratios 0.05 .. 0.3: three bins
        r = g.copy()
        r[hole] = 128
        save_png(d["gt"] / f"im{i}.png", g)
        save_png(d["res"] / f"im{i}.png", r)
        save_png(d["masks"] / f"im{i}.png", np.where(hole, 0, 255).astype(np.uint8))
    return d


HOLE_PIXELS = sum(4 * (i + 1) * 24 for i in range(6))


def test_eval_end_to_end_smoke(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MATBENCH_CACHE", str(tmp_path / "cache"))
    d = _write_set(tmp_path)
    out = tmp_path / "out"
    rc = main(["eval", "--results", str(d["res"]), "--gt", str(d["gt"]), "--masks", str(d["masks"]),
               "--mask-polarity", "known=255", "--metrics", "seg_ssim,seg_lpips,lpips", "--smoke",
               "--device", "cpu", "--bootstrap", "20", "--no-cache", "--threads", "1", "--workers", "0",
               "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((out / "metrics.json").read_text())
    m = rec["metrics"]
    assert rec["smoke"] is True and m["seg_ssim"]["extra"]["segmenter"]["smoke"] is True
    for name in ("seg_ssim", "seg_lpips"):
        assert m[name]["n"] == 6 and math.isfinite(m[name]["value"]) and m[name]["extra"]["per_class"]
        assert set(m[name]["extra"]["per_class"]) == set(m[name]["extra"]["hole_pixels"]) <= set(CLASS_NAMES)
        assert sum(m[name]["extra"]["hole_pixels"].values()) == HOLE_PIXELS
    assert m["seg_lpips"]["value"] == pytest.approx(m["lpips"]["value"], rel=1e-12)  # same network, same images
    binned = [b for b in rec["bins"] if b["n"] >= 2]
    assert binned and all({"seg_ssim", "seg_lpips"} <= set(b["metrics"]) for b in binned)
    assert main(["table", str(out)]) == 0
    assert "SSIM (LaMa, seg.-aware)" in capsys.readouterr().out


def test_seg_fid_through_the_evaluator(tmp_path, monkeypatch):
    """seg_fid on the evaluation's Inception features (a small stand-in extractor here), whole set and bins."""
    from PIL import Image

    import matbench.features as F

    def colour_stats(x: torch.Tensor) -> torch.Tensor:  # 9-d: per-channel mean, std and max
        x = x.to(torch.float64).flatten(2)
        return torch.cat([x.mean(2), x.std(2), x.amax(2)], 1)

    monkeypatch.setattr(F, "get_extractor", lambda name, *a, **k: F.FeatureExtractor(name, colour_stats, 9, "t", True))
    d = _write_set(tmp_path)
    load = [torch.from_numpy(np.stack([np.asarray(Image.open(d[k] / f"im{i}.png")) for i in range(6)]))
            .permute(0, 3, 1, 2).contiguous() for k in ("gt", "res")]
    hole = torch.from_numpy(np.stack([np.asarray(Image.open(d["masks"] / f"im{i}.png")) < 128
                                      for i in range(6)]))[:, None]
    ev = Evaluator(["seg_fid"], smoke=True, device="cpu", cache_dir=False, n_bootstrap=10,
                   fid_convention="torch-fidelity")
    ids = [f"im{i}" for i in range(6)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a ResNet-50 on a shared CPU: one thread is several times faster than two
    try:
        rec, _ = ev.finalize([ev.process_batch(ids[:4], load[0][:4], load[1][:4], hole[:4]),
                              ev.process_batch(ids[4:], load[0][4:], load[1][4:], hole[4:])], job={})
        counts = S.hole_class_pixels(S.segmenter(ev).predict(load[0]), hole)
    finally:
        torch.set_num_threads(threads)
    # the extractor hands features over in float32
    real, fake = (colour_stats(x).float().double().numpy() for x in load)
    m = rec.metrics["seg_fid"]
    assert m.value == pytest.approx(fd(real, fake, "torch-fidelity"), rel=1e-9)
    _close(m.extra["per_class"], S.per_class(counts, S.fid_shares(real, fake, "torch-fidelity")), 1e-9)
    assert sum(m.extra["hole_pixels"].values()) == HOLE_PIXELS and m.convention == "torch-fidelity"
    b = next(b for b in rec.bins if b["n"] >= 2)
    idx = np.flatnonzero(assign_bins(hole.flatten(1).double().mean(1).numpy()) == BINS.index(b["label"]))
    # n < D in a bin: the N x N form of metrics.fd, equal to the D x D one up to rounding
    assert b["metrics"]["seg_fid"].value == pytest.approx(fd(real[idx], fake[idx], "torch-fidelity"), rel=1e-7)


BINS = [f"{10 * i}-{10 * (i + 1)}%" for i in range(10)]
