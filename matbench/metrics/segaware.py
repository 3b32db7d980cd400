"""LaMa's segmentation-aware metrics: SSIM, LPIPS and FID, and their shares per ADE20k class under the hole.

Source: advimman/lama saicinpainting/evaluation/losses/base_loss.py (SegmentationAwareSSIM / LPIPS / FID, used by
bin/evaluate_predicts.py with configs/eval2_segm.yaml). The ground truth of each image is segmented by the ADE20k
network (matbench.features.segmentation); its class map, restricted to the hole, says which classes the model had to
fill. Per image i and class c, n_ic = the hole pixels of class c in the ground truth's class map. Then:

  seg_ssim   value = mean over images of s_i, LaMa's SSIM of the whole image (11×11 Gaussian σ 1.5, zero padding,
             C1 = 0.01², C2 = 0.03², on [0, 1], mean over pixels and channels; not MAT's SSIM of `ssim`);
  seg_lpips  value = mean over images of the LPIPS distance s_i (the evaluation's LPIPS network: LaMa uses vgg,
             `--lpips-net vgg`);
  per class  (extra["per_class"], classes with n_c = Σ_i n_ic > 0):  Σ_i n_ic s_i / (n_c + 0.001), i.e. the score
             averaged over images weighted by how much of class c their hole covers;
  seg_fid    value = FID between result and ground-truth Inception features (the evaluation's Inception and FID
             convention; LaMa's protocol: pt-inception, 1/(N-1)); per class, the same weighted average of each
             image's share e_i = FID - FID with image i's result replaced by its ground truth (exact, one Fréchet
             distance per image: computed for sets up to FID_SHARES_MAX images, else left out and said so).

extra["hole_pixels"] holds n_c per class name (LaMa's names, object150_info.csv), extra["std"] LaMa's population std
of the per-image scores. Per hole-ratio bin everything is recomputed on the bin's images (LaMa's group results).
The metrics need masks. With --smoke the segmentation network has random weights: its classes are meaningless.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from matbench.errors import Hint, InputError
from matbench.features.segmentation import (
    CLASS_NAMES,
    DECODER_WEIGHTS,
    ENCODER_WEIGHTS,
    NUM_CLASSES,
    ADE20kSegmenter,
    load_segmenter,
)
from matbench.metrics.bootstrap import mean_interval
from matbench.metrics.fd import fd_interval, fd_statistic, fd_value
from matbench.metrics.registry import BatchContext, DatasetContext, register_group, register_metric
from matbench.results import MetricValue

SEG_METRICS = ("seg_ssim", "seg_lpips", "seg_fid")
COUNTS = "seg_hole_class_pixels"  # per-image arrays kept between the batch and dataset steps
VALUES = {"seg_ssim": "seg_ssim_per_image", "seg_lpips": "seg_lpips_per_image"}
FID_SHARES_MAX = 500  # one Fréchet distance per image: beyond this the per-class FID shares are left out
_EPS = 1e-3  # LaMa's distribute_values_to_classes denominator offset
_SEGMENTERS: dict[tuple, ADE20kSegmenter] = {}


def lama_ssim(real: torch.Tensor, fake: torch.Tensor) -> np.ndarray:
    """LaMa's SSIM [N] of uint8 [N, 3, H, W] batches (float32 on [0, 1], zero-padded 11×11 Gaussian window)."""
    a = fake.to(torch.float32) / 255  # LaMa's order: score(prediction, target)
    b = real.to(torch.float32, copy=False).to(a.device) / 255
    x = np.arange(11)
    g = torch.tensor(np.exp(-((x - 5) ** 2) / (2 * 1.5 ** 2)), dtype=torch.float32)
    g = g / g.sum()
    c = a.shape[1]
    window = (g[:, None] @ g[None, :]).expand(c, 1, 11, 11).contiguous().to(a.device)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, padding=5, groups=c)

    mu1, mu2 = blur(a), blur(b)
    s11 = blur(a * a) - mu1 * mu1
    s22 = blur(b * b) - mu2 * mu2
    s12 = blur(a * b) - mu1 * mu2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    smap = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 * mu1 + mu2 * mu2 + c1) * (s11 + s22 + c2))
    return smap.mean(1).mean(1).mean(1).cpu().numpy().astype(np.float64)


def hole_class_pixels(class_map: torch.Tensor, hole: torch.Tensor) -> np.ndarray:
    """n_ic [N, 150] int64: hole pixels of each class per image (class_map int [N, H, W], hole bool [N, 1, H, W])."""
    n = class_map.shape[0]
    h = hole.reshape(n, -1).to(class_map.device)
    idx = class_map.reshape(n, -1).long() + NUM_CLASSES * torch.arange(n, device=class_map.device)[:, None]
    return torch.bincount(idx[h], minlength=n * NUM_CLASSES).reshape(n, NUM_CLASSES).cpu().numpy()


def per_class(counts: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """LaMa's distribute_values_to_classes: {class name: Σ_i n_ic v_i / (n_c + 0.001)} for classes present."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(0)
    shares = (counts * np.asarray(values, dtype=np.float64)[:, None]).sum(0) / (total + _EPS)
    return {CLASS_NAMES[c]: float(shares[c]) for c in np.flatnonzero(total > 0)}


def fid_shares(real: np.ndarray, fake: np.ndarray, convention: str, device: str = "cpu") -> np.ndarray:
    """e_i = FD(real, fake) - FD(real, fake with row i replaced by real row i) [n] (LaMa's calculade_fid_no_img)."""
    def dist(f: np.ndarray) -> float:
        return fd_value(real, f, convention, fd_statistic(real, f, convention, device))

    full = dist(fake)
    out = np.empty(real.shape[0])
    for i in range(real.shape[0]):  # bounded by FID_SHARES_MAX: LaMa's definition is one distance per image
        sub = fake.copy()
        sub[i] = real[i]
        out[i] = full - dist(sub)
    return out


def segmenter(ev: Any) -> ADE20kSegmenter:
    """The evaluation's ADE20k network (built once per device and weights)."""
    c = ev.config
    paths = (c.feature_weights.get(ENCODER_WEIGHTS.name), c.feature_weights.get(DECODER_WEIGHTS.name))
    key = (ev.device, c.smoke, paths, c.allow_download)
    if key not in _SEGMENTERS:
        _SEGMENTERS[key] = load_segmenter(*paths, device=ev.device, smoke=c.smoke, allow_download=c.allow_download)
    return _SEGMENTERS[key]


def _counts_step(ctx: BatchContext) -> None:
    """Segment the ground truths once per batch (shared by every segmentation-aware metric)."""
    if COUNTS in ctx.features:
        return
    wanted = [m for m in SEG_METRICS if m in ctx.ev.metrics]
    if ctx.hole is None:
        raise InputError(f"{', '.join(wanted)}: segmentation-aware metrics need masks (a mask set in the spec)",
                         hints=[Hint("--masks", "give --masks")])
    net, bs = segmenter(ctx.ev), ctx.ev.net_batch
    maps = [net.predict(ctx.real[i:i + bs]) for i in range(0, len(ctx.ids), bs)]
    ctx.features[COUNTS] = hole_class_pixels(torch.cat(maps), ctx.hole)


def _pair_batch(ctx: BatchContext) -> None:
    _counts_step(ctx)
    if "seg_ssim" in ctx.ev.metrics:
        ctx.features[VALUES["seg_ssim"]] = lama_ssim(ctx.real, ctx.fake)
    if "seg_lpips" in ctx.ev.metrics:
        rows = [r.get("lpips") for r in ctx.rows]
        if all(v is not None for v in rows):  # the lpips metric already ran on this batch, same network
            ctx.features[VALUES["seg_lpips"]] = np.asarray(rows, dtype=np.float64)
        else:
            ev, bs = ctx.ev, ctx.ev.net_batch
            ctx.features[VALUES["seg_lpips"]] = torch.cat(
                [ev.lpips(ctx.real[i:i + bs], ctx.fake[i:i + bs], ctx.ids[i:i + bs])
                 for i in range(0, len(ctx.ids), bs)]).double().numpy()


def _extra(ctx: DatasetContext, counts: np.ndarray) -> dict[str, Any]:
    total = counts.sum(0)
    return {"hole_pixels": {CLASS_NAMES[c]: int(total[c]) for c in np.flatnonzero(total > 0)},
            "segmenter": segmenter(ctx.ev).describe()}


def _pair_dataset(ctx: DatasetContext) -> dict[str, MetricValue]:
    counts = ctx.feats[COUNTS][ctx.idx]
    out = {}
    for m in ("seg_ssim", "seg_lpips"):
        if m not in ctx.ev.metrics:
            continue
        v = ctx.feats[VALUES[m]][ctx.idx]
        lo, hi = mean_interval(v, ctx.n_bootstrap, ctx.seed)
        extra = {**_extra(ctx, counts), "std": float(v.std()), "per_class": per_class(counts, v)}
        if m == "seg_lpips":
            extra["lpips_net"] = ctx.ev.config.lpips_net
        out[m] = MetricValue(float(v.mean()), lo, hi, ctx.n, extra=extra)
    return out


def _fid_dataset(ctx: DatasetContext) -> dict[str, MetricValue]:
    ev = ctx.ev
    real, fake = ctx.features("inception")
    counts = ctx.feats[COUNTS][ctx.idx]
    value, lo, hi, method = fd_interval(real, fake, ev.fid_convention, ctx.n_bootstrap, ctx.seed, ev.device)
    extra = {**_extra(ctx, counts), "extractor": ev.inception_name, "ci_method": method}
    if ctx.n <= FID_SHARES_MAX:
        extra["per_class"] = per_class(counts, fid_shares(real, fake, ev.fid_convention, ev.device))
    else:
        extra["per_class_note"] = (f"per-class FID shares left out: {ctx.n} images > {FID_SHARES_MAX} (LaMa's "
                                   "definition costs one Fréchet distance per image)")
    return {"seg_fid": MetricValue(value, lo, hi, ctx.n, convention=ev.fid_convention, extra=extra)}


register_group("seg_pair", batch=_pair_batch, dataset=_pair_dataset)
register_group("seg_fid", extractor="inception", batch=_counts_step, dataset=_fid_dataset)
_ORDER = 200
register_metric("seg_ssim", higher_is_better=True, label="SSIM (LaMa, seg.-aware)", group="seg_pair", digits=4,
                interval="bootstrap-mean", order=_ORDER,
                doc="LaMa's SSIM per image, mean, and its average per ADE20k class under the hole")(None)
register_metric("seg_lpips", higher_is_better=False, label="LPIPS (seg.-aware)", group="seg_pair", digits=4,
                interval="bootstrap-mean", order=_ORDER + 1,
                doc="LPIPS per image, mean, and its average per ADE20k class under the hole")(None)
register_metric("seg_fid", higher_is_better=False, label="FID (seg.-aware)", extractor="inception", group="seg_fid",
                interval="bias-corrected", order=_ORDER + 2,
                doc="FID, and each image's FID share averaged per ADE20k class under the hole")(None)
