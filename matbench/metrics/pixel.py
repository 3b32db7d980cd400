"""PSNR, SSIM and L1 exactly as MAT's evaluatoin/cal_psnr_ssim_l1.py defines them, per image.

All three work on the full RGB image in float64 (values 0..255):
  PSNR = 20 log10(255 / sqrt(MSE)), MSE over all pixels and channels; +inf for identical images (as MAT).
  SSIM = mean of the SSIM map, C1 = (0.01*255)^2, C2 = (0.03*255)^2, local statistics from an 11x11 Gaussian
         window (sigma 1.5, the outer product of cv2.getGaussianKernel(11, 1.5)) applied to each channel
         separately; the map is cropped by 5 pixels on every side and averaged over rows, columns AND the three
         channels together. The crop equals the window radius, so the cropped map is exactly the 'valid'
         filtering: no border mode is involved.
  L1   = mean |a - b| / 255 over all pixels and channels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from matbench.errors import InputError
from matbench.metrics import pixel_cpu
from matbench.metrics.registry import BatchContext, register_group, register_metric

_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_RADIUS = 5


def gaussian_taps(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian taps (what cv2.getGaussianKernel(size, sigma) returns for sigma > 0)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


_TAPS = gaussian_taps()


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = _pair(a, b)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return float("inf")
    return 20.0 * math.log10(255.0 / math.sqrt(mse))


def l1(a: np.ndarray, b: np.ndarray) -> float:
    a, b = _pair(a, b)
    return float(np.mean(np.abs(a - b)) / 255.0)


def _valid_filter(x: np.ndarray) -> np.ndarray:
    """Separable 11x11 Gaussian on axes 0 and 1, 'valid' output (H-10, W-10, ...)."""
    n = len(_TAPS)
    h, w = x.shape[:2]
    rows = sum(_TAPS[k] * x[k:h - n + 1 + k] for k in range(n))
    return sum(_TAPS[k] * rows[:, k:w - n + 1 + k] for k in range(n))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two HxW or HxWxC images (uint8 values), MAT's definition (see module doc)."""
    a, b = _pair(a, b)
    if a.ndim not in (2, 3) or a.shape[0] <= 2 * _RADIUS or a.shape[1] <= 2 * _RADIUS:
        raise ValueError(f"SSIM needs HxW or HxWxC images larger than 10x10, got {a.shape}")
    mu1, mu2 = _valid_filter(a), _valid_filter(b)
    s11 = _valid_filter(a * a) - mu1 * mu1
    s22 = _valid_filter(b * b) - mu2 * mu2
    s12 = _valid_filter(a * b) - mu1 * mu2
    num = (2 * mu1 * mu2 + _C1) * (2 * s12 + _C2)
    den = (mu1 * mu1 + mu2 * mu2 + _C1) * (s11 + s22 + _C2)
    return float(np.mean(num / den))


def _check_batch(real: torch.Tensor, fake: torch.Tensor) -> None:
    for name, t in (("real", real), ("fake", fake)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4:
            raise ValueError(f"{name}: expected a [N, C, H, W] tensor")
    if real.shape != fake.shape:
        raise ValueError(f"batch shapes differ: real {tuple(real.shape)} vs fake {tuple(fake.shape)}")
    if real.shape[2] <= 2 * _RADIUS or real.shape[3] <= 2 * _RADIUS:
        raise ValueError(f"images must be larger than 10x10, got {tuple(real.shape[2:])}")


BACKENDS = ("auto", "numba", "opencv", "torch")


def pixel_metrics_batch(real: torch.Tensor, fake: torch.Tensor, backend: str = "auto") -> dict[str, np.ndarray]:
    """Per-image {"psnr", "ssim", "l1"} [N] (float64) for uint8 [N, C, H, W] batches.

    All backends are float64 and follow the definitions above; they differ only in the order of additions.
    "auto": CPU tensors use the fused numba kernel (matbench.metrics.pixel_cpu) when numba is installed,
    else "opencv" (separable cv2 filtering of the whole batch); tensors on a GPU use "torch" on their device.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown pixel-metric backend {backend!r}; use one of {', '.join(BACKENDS)}")
    _check_batch(real, fake)
    if backend == "auto":
        backend = "torch" if real.device.type != "cpu" else ("numba" if pixel_cpu.AVAILABLE else "opencv")
    if backend == "torch":
        return _batch_torch(real, fake)
    a = real.detach().cpu().numpy()
    b = fake.detach().cpu().numpy()
    if backend == "numba":
        sse, sae, ssim_sum = pixel_cpu.pixel_sums(a, b, _TAPS, _C1, _C2)
    else:
        sse, sae, ssim_sum = _sums_opencv(a, b)
    n, c, h, w = a.shape
    sse, sae, ssim_sum = (x.reshape(n, c).sum(axis=1) for x in (sse, sae, ssim_sum))
    with np.errstate(divide="ignore"):
        mse = sse / (c * h * w)
        psnr_v = 20.0 * np.log10(255.0 / np.sqrt(mse))  # mse 0 -> +inf, as MAT
    return {"psnr": psnr_v, "ssim": ssim_sum / (c * (h - 2 * _RADIUS) * (w - 2 * _RADIUS)),
            "l1": sae / (c * h * w) / 255.0}


def _sums_opencv(a: np.ndarray, b: np.ndarray, chunk_bytes: int = 64 << 20) -> tuple[np.ndarray, ...]:
    """Per plane sums (as pixel_cpu.pixel_sums) with cv2.sepFilter2D on planes stacked vertically.

    Stacking is exact: an output row kept after the crop only reads rows of its own plane. Planes go through
    in chunks of about `chunk_bytes` of float64 maps, so memory stays bounded for large batches.
    """
    import cv2

    n, c, h, w = a.shape
    a = a.reshape(n * c, h, w)
    b = b.reshape(n * c, h, w)
    d = a.astype(np.int32) - b.astype(np.int32)
    sse = (d * d).reshape(n * c, -1).sum(axis=1).astype(np.float64)  # integer sums: exact
    sae = np.abs(d).reshape(n * c, -1).sum(axis=1).astype(np.float64)
    k = _TAPS.reshape(-1, 1)
    r = _RADIUS
    step = max(1, chunk_bytes // (4 * h * w * 8))
    ssim_sum = np.empty(n * c)
    for i in range(0, n * c, step):
        ai = a[i:i + step].astype(np.int32)
        bi = b[i:i + step].astype(np.int32)
        maps = np.empty((4, *ai.shape), np.float64)
        maps[0], maps[1], maps[2], maps[3] = ai, bi, ai * ai + bi * bi, ai * bi
        f = cv2.sepFilter2D(maps.reshape(-1, w), cv2.CV_64F, k, k).reshape(maps.shape)[..., r:-r, r:-r]
        mu1, mu2, sq, ab = f
        m12 = mu1 * mu2
        m11 = mu1 * mu1 + mu2 * mu2
        ssim_map = ((2 * m12 + _C1) * (2 * (ab - m12) + _C2)) / ((m11 + _C1) * (sq - m11 + _C2))
        ssim_sum[i:i + step] = ssim_map.reshape(ssim_map.shape[0], -1).sum(axis=1)
    return sse, sae, ssim_sum


def _batch_torch(real: torch.Tensor, fake: torch.Tensor) -> dict[str, np.ndarray]:
    """Depthwise float64 convolution on the tensors' device (the GPU path)."""
    with torch.no_grad():
        a = real.to(torch.float64)
        b = fake.to(torch.float64)
        n, c = a.shape[:2]
        diff = a - b
        mse = (diff * diff).flatten(1).mean(dim=1)
        psnr_v = 20.0 * torch.log10(255.0 / torch.sqrt(mse))  # mse 0 -> +inf, as the per-image function
        l1_v = diff.abs().flatten(1).mean(dim=1) / 255.0

        taps = torch.as_tensor(_TAPS, dtype=torch.float64, device=a.device)
        kv = taps.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
        kh = taps.view(1, 1, 1, -1).repeat(c, 1, 1, 1)

        def blur(x: torch.Tensor) -> torch.Tensor:  # depthwise separable, 'valid' like the 5-pixel crop
            return F.conv2d(F.conv2d(x, kv, groups=c), kh, groups=c)

        mu1, mu2 = blur(a), blur(b)
        s11 = blur(a * a) - mu1 * mu1
        s22 = blur(b * b) - mu2 * mu2
        s12 = blur(a * b) - mu1 * mu2
        ssim_map = ((2 * mu1 * mu2 + _C1) * (2 * s12 + _C2)) / ((mu1 * mu1 + mu2 * mu2 + _C1) * (s11 + s22 + _C2))
        ssim_v = ssim_map.flatten(1).mean(dim=1)
    return {"psnr": psnr_v.cpu().numpy(), "ssim": ssim_v.cpu().numpy(), "l1": l1_v.cpu().numpy()}


PIXEL_METRICS = ("psnr", "ssim", "l1")


def _evaluate(ctx: BatchContext) -> None:
    """PSNR, SSIM and L1 per image, one pass over the batch."""
    try:
        px = pixel_metrics_batch(ctx.real, ctx.fake)
    except ValueError as e:  # e.g. images too small for the SSIM window
        shown = ", ".join(ctx.ids[:3]) + (f", … ({len(ctx.ids)} in all)" if len(ctx.ids) > 3 else "")
        raise InputError(f"PSNR/SSIM/L1 on {shown}: {e}") from None
    for k in set(PIXEL_METRICS) & set(ctx.ev.metrics):
        for r, v in zip(ctx.rows, px[k], strict=True):
            r[k] = float(v)


register_group("pixel", per_image=True, batch=_evaluate)
register_metric("psnr", higher_is_better=True, label="PSNR", per_image=True, group="pixel", default=7, order=80,
                doc="PSNR on uint8 RGB, 20 log10(255 / sqrt(MSE)) (MAT)")(None)
register_metric("ssim", higher_is_better=True, label="SSIM", per_image=True, group="pixel", digits=4, default=8,
                order=90, doc="SSIM, 11x11 Gaussian σ 1.5, 5-pixel border cropped (MAT)")(None)
register_metric("l1", higher_is_better=False, label="L1", per_image=True, group="pixel", digits=4, default=9,
                order=100, doc="mean |a - b| / 255 (MAT)")(None)
