"""Region metrics: PSNR, SSIM, L1 and LPIPS over the hole, the known pixels or the seam only, per image.

Whole-image scores are dominated by the known pixels that every model copies; these see where the model worked.
Regions of one image, from its bool hole mask (True = hole):
  hole   the hole pixels;
  known  the other pixels (meaningful for results that do not composite: a composited result copies them, so
         its known PSNR is +inf and its known L1/LPIPS 0);
  seam   a band around the hole's boundary, SEAM_WIDTH px on each side: hole pixels with a known pixel within
         SEAM_WIDTH px, and known pixels with a hole pixel within SEAM_WIDTH px (Chebyshev distance, i.e. a
         (2w+1)×(2w+1) square; outside the image counts as neither).
Definitions (float64, values 0..255, as matbench.metrics.pixel):
  PSNR = 10 log10(255² / MSE), MSE over the region's pixels and the three channels; +inf when MSE is 0 (as MAT).
  L1   = mean |a - b| / 255 over the region's pixels and channels.
  SSIM = MAT's SSIM map (11×11 Gaussian σ 1.5, C1, C2 of pixel.py, valid filtering: the map exists for pixels at
         least 5 px from the image border) averaged over the region's pixels that have a map value and the three
         channels: region pixels within 5 px of the border are left out.
  LPIPS = the lpips package's spatial map (spatial=True: every layer's distance upsampled bilinearly to the image
         size, summed) averaged over the region's pixels; same network and options as the lpips metric.
An image whose region is empty (no hole, a hole covering the image, or for SSIM no region pixel inside the
valid crop) has no value: NaN in per_image.csv, left out of the mean, its interval and n, and counted in the
value's extra["n_empty"]. The metrics need masks: without them they are refused.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from matbench.errors import Hint, InputError
from matbench.metrics.pixel import _C1, _C2, _RADIUS, _TAPS
from matbench.metrics.registry import BatchContext, register_group, register_metric

SEAM_WIDTH = 8  # px on each side of the hole boundary
REGIONS = ("hole", "known", "seam")
KINDS = ("psnr", "ssim", "l1", "lpips")
REGION_METRICS = tuple(f"{k}_{r}" for r in REGIONS for k in KINDS)
# every metric that looks at the hole (issue 24): these, local FID, sFID and FD∞; the report plots them by bin
HOLE_METRICS = (*REGION_METRICS, "fid_local", "sfid", "fid_inf")


def seam_band(hole: torch.Tensor, width: int = SEAM_WIDTH) -> torch.Tensor:
    """Bool [N, 1, H, W]: pixels within `width` px (Chebyshev) of a pixel of the other kind (hole vs known)."""
    h = hole.to(torch.float32)
    k = 2 * width + 1

    def near(x: torch.Tensor) -> torch.Tensor:  # max_pool2d pads with -inf: outside the image is neither kind
        # a square's max is the max of row maxima: two 1-D pools instead of one k×k
        x = F.max_pool2d(x, (1, k), stride=1, padding=(0, width))
        return F.max_pool2d(x, (k, 1), stride=1, padding=(width, 0)) > 0

    return near(h) & near(1.0 - h)


def region_masks(hole: torch.Tensor, width: int = SEAM_WIDTH) -> dict[str, torch.Tensor]:
    """{"hole", "known", "seam"}: bool [N, 1, H, W] masks of one batch's regions."""
    hole = hole.bool()
    return {"hole": hole, "known": ~hole, "seam": seam_band(hole, width)}


def ssim_map(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """MAT's SSIM map [N, C, H-10, W-10] (float64) of uint8 batches: value (i, j) belongs to pixel (i+5, j+5).

    CPU tensors: cv2.sepFilter2D per plane (several times faster than torch's float64 convolution there);
    others: depthwise convolution on their device. Same definition, different order of additions."""
    if real.device.type == "cpu":
        return _ssim_map_cv2(real.numpy(), fake.numpy())
    return _ssim_map_torch(real, fake)


def _ssim_map_torch(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    a = real.to(torch.float64)
    b = fake.to(torch.float64)
    c = a.shape[1]
    taps = torch.as_tensor(_TAPS, dtype=torch.float64, device=a.device)
    kv = taps.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    kh = taps.view(1, 1, 1, -1).repeat(c, 1, 1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:  # depthwise separable, 'valid' (pixel.py's torch path)
        return F.conv2d(F.conv2d(x, kv, groups=c), kh, groups=c)

    mu1, mu2 = blur(a), blur(b)
    s11 = blur(a * a) - mu1 * mu1
    s22 = blur(b * b) - mu2 * mu2
    s12 = blur(a * b) - mu1 * mu2
    return ((2 * mu1 * mu2 + _C1) * (2 * s12 + _C2)) / ((mu1 * mu1 + mu2 * mu2 + _C1) * (s11 + s22 + _C2))


def _ssim_map_cv2(a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    n, c, h, w = a.shape
    k = _TAPS.reshape(-1, 1)
    r = _RADIUS
    out = np.empty((n, c, h - 2 * r, w - 2 * r))
    for i in range(n):
        for j in range(c):
            x, y = a[i, j].astype(np.float64), b[i, j].astype(np.float64)
            mu1, mu2, xx, yy, xy = (cv2.sepFilter2D(m, cv2.CV_64F, k, k)[r:-r, r:-r]
                                    for m in (x, y, x * x, y * y, x * y))
            s11, s22, s12 = xx - mu1 * mu1, yy - mu2 * mu2, xy - mu1 * mu2
            out[i, j] = ((2 * mu1 * mu2 + _C1) * (2 * s12 + _C2)) / ((mu1 * mu1 + mu2 * mu2 + _C1) * (s11 + s22 + _C2))
    return torch.from_numpy(out)


def _region_mean(values: torch.Tensor, mask: torch.Tensor, channels: int = 1) -> np.ndarray:
    """Mean over mask [N, 1, H, W] of values [N, 1, H, W] that are sums over `channels` channels, per image: the
    mean over the region's pixels and channels. NaN where the mask is empty."""
    m = mask.to(values.dtype)
    total = (values * m).flatten(1).sum(1)
    count = m.flatten(1).sum(1) * channels
    out = (total / count.clamp(min=1)).double().cpu().numpy()
    out[count.cpu().numpy() == 0] = np.nan
    return out


def pixel_region_metrics(real: torch.Tensor, fake: torch.Tensor, masks: dict[str, torch.Tensor],
                         kinds: tuple[str, ...] = ("psnr", "ssim", "l1")) -> dict[str, np.ndarray]:
    """{"<kind>_<region>": [N] float64} for uint8 [N, 3, H, W] batches and region masks (see region_masks)."""
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        c = real.shape[1]
        diff = real.to(torch.float64) - fake.to(torch.float64)
        # per-pixel sums over channels first: every region mask is the same for all channels
        sq = (diff * diff).sum(1, keepdim=True) if "psnr" in kinds else None
        ab = diff.abs().sum(1, keepdim=True) if "l1" in kinds else None
        for name, mask in masks.items():
            if sq is not None:
                mse = _region_mean(sq, mask, c)
                with np.errstate(divide="ignore"):
                    out[f"psnr_{name}"] = 10.0 * np.log10(255.0 ** 2 / mse)  # mse 0 -> +inf, NaN stays NaN
            if ab is not None:
                out[f"l1_{name}"] = _region_mean(ab, mask, c) / 255.0
        if "ssim" in kinds:
            r = _RADIUS
            parts: dict[str, list[np.ndarray]] = {name: [] for name in masks}
            for i in range(real.shape[0]):  # one image's map at a time: memory stays one image's worth
                smap = ssim_map(real[i:i + 1], fake[i:i + 1]).sum(1, keepdim=True)
                for name, mask in masks.items():
                    parts[name].append(_region_mean(smap, mask[i:i + 1, :, r:-r, r:-r].to(smap.device), c))
            for name, p in parts.items():
                out[f"ssim_{name}"] = np.concatenate(p)
    return out


def _evaluate(ctx: BatchContext) -> None:
    """The requested region metrics per image, one pass over the batch (one LPIPS map per sub-batch)."""
    wanted = [m for m in REGION_METRICS if m in ctx.ev.metrics]
    if not wanted:
        return
    if ctx.hole is None:
        raise InputError(f"{', '.join(wanted)}: region metrics need masks", hints=[Hint("--masks", "give --masks")])
    if ctx.real.shape[2] <= 2 * _RADIUS or ctx.real.shape[3] <= 2 * _RADIUS:
        raise InputError(f"{', '.join(wanted)} on {', '.join(ctx.ids[:3])}: images must be larger than 10x10, "
                         f"got {tuple(ctx.real.shape[2:])}")
    masks = region_masks(ctx.hole)
    kinds = tuple(k for k in KINDS if any(m.startswith(k + "_") for m in wanted))
    vals = pixel_region_metrics(ctx.real, ctx.fake, masks, tuple(k for k in kinds if k != "lpips"))
    if "lpips" in kinds:
        ev, bs = ctx.ev, ctx.ev.net_batch
        maps = torch.cat([ev.lpips.spatial_map(ctx.real[i:i + bs], ctx.fake[i:i + bs])
                          for i in range(0, len(ctx.ids), bs)]).to(torch.float64)
        for name, mask in masks.items():
            vals[f"lpips_{name}"] = _region_mean(maps, mask.cpu())
    for m in wanted:
        for row, v in zip(ctx.rows, vals[m].tolist(), strict=True):
            row[m] = float(v)


register_group("region", per_image=True, batch=_evaluate)
_LABEL = {"psnr": "PSNR", "ssim": "SSIM", "l1": "L1", "lpips": "LPIPS"}
_HIGHER = {"psnr": True, "ssim": True, "l1": False, "lpips": False}
_DOC = {"psnr": "10 log10(255² / MSE) over the {r}", "ssim": "MAT's SSIM map averaged over the {r}",
        "l1": "mean |a - b| / 255 over the {r}", "lpips": "LPIPS spatial map averaged over the {r}"}
_WHERE = {"hole": "hole pixels", "known": "known pixels",
          "seam": f"band of {SEAM_WIDTH} px each side of the hole boundary"}
for _i, _m in enumerate(REGION_METRICS):
    _k, _r = _m.split("_")
    register_metric(_m, higher_is_better=_HIGHER[_k], label=f"{_LABEL[_k]} ({_r})", per_image=True, group="region",
                    digits=2 if _k == "psnr" else 4, order=120 + _i, doc=_DOC[_k].format(r=_WHERE[_r]),
                    extra={"region": _r, **({"seam_width": SEAM_WIDTH} if _r == "seam" else {})})(None)
