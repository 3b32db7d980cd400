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

import numpy as np
import torch
import torch.nn.functional as F

from matbench.errors import InputError
from matbench.metrics.pixel import _C1, _C2, _RADIUS, _TAPS
from matbench.metrics.registry import BatchContext, register_group, register_metric

SEAM_WIDTH = 8  # px on each side of the hole boundary
REGIONS = ("hole", "known", "seam")
KINDS = ("psnr", "ssim", "l1", "lpips")
REGION_METRICS = tuple(f"{k}_{r}" for r in REGIONS for k in KINDS)


def seam_band(hole: torch.Tensor, width: int = SEAM_WIDTH) -> torch.Tensor:
    """Bool [N, 1, H, W]: pixels within `width` px (Chebyshev) of a pixel of the other kind (hole vs known)."""
    h = hole.to(torch.float32)
    k = 2 * width + 1

    def near(x: torch.Tensor) -> torch.Tensor:  # max_pool2d pads with -inf: outside the image is neither kind
        return F.max_pool2d(x, k, stride=1, padding=width) > 0

    return near(h) & near(1.0 - h)


def region_masks(hole: torch.Tensor, width: int = SEAM_WIDTH) -> dict[str, torch.Tensor]:
    """{"hole", "known", "seam"}: bool [N, 1, H, W] masks of one batch's regions."""
    hole = hole.bool()
    return {"hole": hole, "known": ~hole, "seam": seam_band(hole, width)}


def ssim_map(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """MAT's SSIM map [N, C, H-10, W-10] (float64) of uint8 batches: value (i, j) belongs to pixel (i+5, j+5)."""
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


def _region_mean(values: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Mean of values [N, C, H, W] over mask [N, 1, H, W] and all channels, per image; NaN where mask is empty."""
    m = mask.to(values.dtype).expand_as(values)
    total = (values * m).flatten(1).sum(1)
    count = m.flatten(1).sum(1)
    out = (total / count.clamp(min=1)).double().cpu().numpy()
    out[count.cpu().numpy() == 0] = np.nan
    return out


def pixel_region_metrics(real: torch.Tensor, fake: torch.Tensor, masks: dict[str, torch.Tensor],
                         kinds: tuple[str, ...] = ("psnr", "ssim", "l1")) -> dict[str, np.ndarray]:
    """{"<kind>_<region>": [N] float64} for uint8 [N, 3, H, W] batches and region masks (see region_masks)."""
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        diff = real.to(torch.float64) - fake.to(torch.float64)
        smap = ssim_map(real, fake) if "ssim" in kinds else None
        r = _RADIUS
        for name, mask in masks.items():
            if "psnr" in kinds:
                mse = _region_mean(diff * diff, mask)
                with np.errstate(divide="ignore"):
                    out[f"psnr_{name}"] = 10.0 * np.log10(255.0 ** 2 / mse)  # mse 0 -> +inf, NaN stays NaN
            if "l1" in kinds:
                out[f"l1_{name}"] = _region_mean(diff.abs(), mask) / 255.0
            if smap is not None:
                out[f"ssim_{name}"] = _region_mean(smap, mask[:, :, r:-r, r:-r])
    return out


def _evaluate(ctx: BatchContext) -> None:
    """The requested region metrics per image, one pass over the batch (one LPIPS map per sub-batch)."""
    wanted = [m for m in REGION_METRICS if m in ctx.ev.metrics]
    if not wanted:
        return
    if ctx.hole is None:
        raise InputError(f"{', '.join(wanted)}: region metrics need masks (give --masks, or masks in the spec)")
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
