"""FIR filtering and resampling (StyleGAN2's make_filter / upfirdn2d / conv2d_resample) in plain PyTorch.

The official code ships CUDA kernels with reference paths written in ordinary PyTorch; the golden outputs were made
with those reference paths. Here the same arithmetic is expressed with torch.nn.functional so it runs on any device
without compiling anything. Supported: 2-D filters (one for all channels, or one per channel as MI-GAN stores them),
integer up/down factors for upfirdn2d, factor 2 for the resampling convolutions, odd square kernels.

Conventions that differ between the ports are parameters: `gain` (applied here, or already baked into a stored
filter: pass 1), `flip_filter` (convolution vs correlation with the filter), `flip_weight` (correlation vs
convolution semantics of the transposed convolution).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Padding = int | Sequence[int]


def make_filter(taps: Sequence[float] = (1, 3, 3, 1), gain: float = 1.0) -> torch.Tensor:
    """2-D low-pass FIR filter: outer product of `taps` normalised to sum 1, times `gain` (float32)."""
    t = torch.as_tensor(list(taps), dtype=torch.float32)
    f = torch.outer(t, t)
    f = f / f.sum()
    if gain != 1:
        f = f * gain
    return f


def _pad4(padding: Padding) -> tuple[int, int, int, int]:
    """int, (x, y)-symmetric pair or (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return (padding, padding, padding, padding)
    p = [int(v) for v in padding]
    if len(p) == 2:
        return (p[0], p[0], p[1], p[1])
    if len(p) != 4:
        raise ValueError(f"padding must be an int, 2 or 4 ints, got {padding!r}")
    return (p[0], p[1], p[2], p[3])


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1, padding: Padding = 0,
              gain: float = 1.0, flip_filter: bool = False) -> torch.Tensor:
    """Zero-insert upsample by `up`, pad (x0, x1, y0, y1; negative crops), FIR filter, keep every `down`-th pixel.

    `f`: [fh, fw] (all channels) or [C, 1, fh, fw] (depthwise, per channel); None = identity.
    flip_filter=False applies the filter as a true convolution, like scipy.signal.upfirdn; True = correlation
    (nn.Conv2d semantics; identical for symmetric filters).
    """
    n, c, h, w = x.shape
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    px0, px1, py0, py1 = _pad4(padding)
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    if gain != 1:
        f = f * gain
    k = f.to(x.dtype)
    if not flip_filter:
        k = k.flip([-2, -1])
    if k.ndim == 2:
        k = k[None, None].repeat(c, 1, 1, 1)
    elif k.shape[0] != c:
        raise ValueError(f"per-channel filter has {k.shape[0]} channels, input has {c}")
    # Decimating through the convolution's stride computes only the kept pixels (same values as slicing).
    return F.conv2d(x, k, stride=down, groups=c)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, padding: Padding = 0, gain: float | None = None,
               flip_filter: bool = False) -> torch.Tensor:
    """FIR upsampling that multiplies the size by exactly `up`; gain defaults to up**2 (keeps the DC level)."""
    fw, fh = f.shape[-1], f.shape[-2]
    px0, px1, py0, py1 = _pad4(padding)
    pad = (px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2)
    return upfirdn2d(x, f, up=up, padding=pad, gain=float(up * up) if gain is None else gain,
                     flip_filter=flip_filter)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2, padding: Padding = 0, gain: float = 1.0,
                 flip_filter: bool = False) -> torch.Tensor:
    """FIR downsampling that divides the size by exactly `down` (for even sizes)."""
    fw, fh = f.shape[-1], f.shape[-2]
    px0, px1, py0, py1 = _pad4(padding)
    pad = (px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2, py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2)
    return upfirdn2d(x, f, down=down, padding=pad, gain=gain, flip_filter=flip_filter)


@dataclass(frozen=True)
class ConvOptions:
    """How a resampling convolution pads, resamples and orients its weight (conv2d_resample, modulated_conv2d).

    One value per layer, built once: the five settings always travel together from a layer to the convolution.
    """

    up: int = 1
    down: int = 1
    padding: int = 0
    flip_weight: bool = True
    filter_gain: float | None = None


PLAIN_CONV = ConvOptions()  # no resampling, no padding, correlation: the defaults of both convolutions


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None,
                    opts: ConvOptions = PLAIN_CONV, groups: int = 1) -> torch.Tensor:
    """Correlation with weight `w` (same-padding `opts.padding`) combined with FIR up- or downsampling by 2.

    down: low-pass filter first, then strided convolution. up: transposed strided convolution, then low-pass filter
    (gain `opts.filter_gain`, default up**2; pass 1 for a filter whose gain is stored in it).
    opts.flip_weight=True keeps correlation semantics in the transposed convolution (MAT, StyleGAN2-ADA); False uses
    the weight as stored there (the CoModGAN port). Without resampling it selects correlation (True) or convolution.
    The split of padding between the steps follows the StyleGAN2 reference so results agree to float rounding.
    """
    up, down, padding, flip_weight, filter_gain = opts.up, opts.down, opts.padding, opts.flip_weight, opts.filter_gain
    if up > 1 and down > 1:
        raise ValueError("conv2d_resample: up and down together are not supported")
    out_ch, in_per_group, kh, kw = w.shape
    fw = 1 if f is None else f.shape[-1]
    fh = 1 if f is None else f.shape[-2]
    px0 = px1 = py0 = py1 = padding
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    if up > 1:
        ugain = float(up * up) if filter_gain is None else filter_gain
        if kw == 1 and kh == 1:
            x = F.conv2d(x, w, groups=groups)
            return upfirdn2d(x, f, up=up, padding=(px0, px1, py0, py1), gain=ugain)
        # conv_transpose2d wants [in, out/groups, kh, kw] and performs a true convolution: flipping the kernel
        # gives correlation semantics.
        if groups == 1:
            wt = w.transpose(0, 1)
        else:
            wt = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
            wt = wt.reshape(groups * in_per_group, out_ch // groups, kh, kw)
        if flip_weight:
            wt = wt.flip([2, 3])
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = F.conv_transpose2d(x, wt, stride=up, padding=[pyt, pxt], groups=groups)
        return upfirdn2d(x, f, padding=(px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt), gain=ugain)

    if not flip_weight:
        w = w.flip([2, 3])
    if down > 1:
        if kw == 1 and kh == 1:
            x = upfirdn2d(x, f, down=down, padding=(px0, px1, py0, py1))
            return F.conv2d(x, w, groups=groups)
        x = upfirdn2d(x, f, padding=(px0, px1, py0, py1))
        return F.conv2d(x, w, stride=down, groups=groups)

    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return F.conv2d(x, w, padding=[py0, px0], groups=groups)
    x = upfirdn2d(x, None, padding=(px0, px1, py0, py1))
    return F.conv2d(x, w, groups=groups)
