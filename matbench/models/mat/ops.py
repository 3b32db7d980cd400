"""Plain-PyTorch equivalents of the StyleGAN2-ADA ops MAT uses (FIR filters, bias+activation, resampling convs).

The official code ships CUDA kernels with reference paths written in ordinary PyTorch; the golden outputs were
made with those reference paths. Here the same arithmetic is expressed directly with torch.nn.functional so it
runs on any device without compiling anything. Only what MAT needs is supported: separable-as-2D 4-tap filters,
resampling factors 1 and 2, odd square kernels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Activation table: (function, default gain). lrelu uses slope 0.2 and gain sqrt(2) (StyleGAN2 convention).
SQRT2 = math.sqrt(2.0)
ACTIVATIONS: dict[str, tuple] = {
    "linear": (lambda x: x, 1.0),
    "lrelu": (lambda x: F.leaky_relu(x, 0.2), SQRT2),
    "relu": (lambda x: F.relu(x), SQRT2),
}


def default_gain(act: str) -> float:
    return ACTIVATIONS[act][1]


def make_filter(taps: list[float] | tuple[float, ...] = (1, 3, 3, 1)) -> torch.Tensor:
    """2-D low-pass FIR filter: outer product of `taps`, normalised to unit DC gain (float32)."""
    t = torch.as_tensor(list(taps), dtype=torch.float32)
    f = torch.outer(t, t)
    return f / f.sum()


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1, act: str = "linear",
             gain: float | None = None, clamp: float | None = None) -> torch.Tensor:
    """Add bias along `dim`, apply activation, scale by gain, optionally clamp (in that order)."""
    fn, def_gain = ACTIVATIONS[act]
    g = float(def_gain if gain is None else gain)
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape)
    x = fn(x)
    if g != 1:
        x = x * g
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def _pad4(padding: int | tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return (padding, padding, padding, padding)
    return tuple(int(p) for p in padding)  # type: ignore[return-value]


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1,
              padding: int | tuple[int, int, int, int] = 0, gain: float = 1.0) -> torch.Tensor:
    """Zero-insert upsample by `up`, pad (x0, x1, y0, y1; negative crops), FIR filter, keep every `down`-th pixel.

    The filter is applied as a true convolution (flipped), depthwise per channel, like scipy.signal.upfirdn.
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
    k = (f * (gain ** (f.ndim / 2))).to(x.dtype).flip([0, 1])
    k = k[None, None].repeat(c, 1, 1, 1)
    x = F.conv2d(x, k, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """FIR upsampling that exactly multiplies the size by `up` (used for the ToRGB skip path)."""
    fw = f.shape[-1]
    p = ((fw + up - 1) // 2, (fw - up) // 2)
    return upfirdn2d(x, f, up=up, padding=(p[0], p[1], p[0], p[1]), gain=up * up)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1, down: int = 1,
                    padding: int = 0, groups: int = 1) -> torch.Tensor:
    """Correlation with weight `w` (same-padding `padding`) combined with FIR up- or downsampling by 2.

    down: low-pass filter first, then strided convolution. up: transposed strided convolution, then low-pass filter.
    The split of padding between the two steps follows the StyleGAN2 reference so results agree to float rounding.
    """
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

    if down > 1:
        if kw == 1 and kh == 1:
            x = upfirdn2d(x, f, down=down, padding=(px0, px1, py0, py1))
            return F.conv2d(x, w, groups=groups)
        x = upfirdn2d(x, f, padding=(px0, px1, py0, py1))
        return F.conv2d(x, w, stride=down, groups=groups)

    if up > 1:
        if kw == 1 and kh == 1:
            x = F.conv2d(x, w, groups=groups)
            return upfirdn2d(x, f, up=up, padding=(px0, px1, py0, py1), gain=up * up)
        # conv_transpose2d wants [in, out/groups, kh, kw] and performs a true convolution, so flip the kernel
        # to keep correlation semantics.
        if groups == 1:
            wt = w.transpose(0, 1)
        else:
            wt = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
            wt = wt.reshape(groups * in_per_group, out_ch // groups, kh, kw)
        wt = wt.flip([2, 3])
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = F.conv_transpose2d(x, wt, stride=up, padding=[pyt, pxt], groups=groups)
        return upfirdn2d(x, f, padding=(px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt), gain=up * up)

    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return F.conv2d(x, w, padding=[py0, px0], groups=groups)
    x = upfirdn2d(x, None, padding=(px0, px1, py0, py1))
    return F.conv2d(x, w, groups=groups)
