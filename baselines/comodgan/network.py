"""CoModGAN generator (Zhao et al., ICLR 2021), written for inference.

The module tree reproduces the tensor names of the PyTorch port zengxianyu/co-mod-gan-pytorch
(`master`, `co_mod_gan.Generator()`), whose converted `.pth` files carry the official TF weights:
180 entries (159 parameters + 21 FIR `kernel` buffers), 79,792,231 parameters at 512.
See ../shared/golden/comodgan/README.md for the layout and the conventions.

Numerics follow the port's CPU path: equalised learning rate (weights scaled at run time),
`leaky_relu(x + b, 0.2) * sqrt(2)` activations, FIR filters as zero-stuffing + padding + a
depthwise convolution with the flipped kernel, modulated convolutions as grouped convolutions.

Unlike the port, the stochastic parts are explicit inputs: the noise maps and the dropout keep
mask of the global code. `dropout_keep=None` is the port's eval() behaviour (no dropout); the
official TF graph always applies dropout(0.5) there, also at inference.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from matbench.models.layers import ConvOptions, FullyConnectedLayer, bias_act, make_filter, modulated_conv2d, upfirdn2d

FIR_TAPS = (1.0, 3.0, 3.0, 1.0)


def fir_kernel(taps: Sequence[float] = FIR_TAPS, gain: float = 1.0) -> torch.Tensor:
    """Separable 2-D low-pass kernel: outer(taps, taps) normalised to sum 1, times `gain` (stored with its gain)."""
    return make_filter(taps, gain=gain)


class FIRFilter(nn.Module):
    """A fixed FIR filter (buffer `kernel`, gain baked in) with zero insertion, padding and decimation."""

    def __init__(self, pad: tuple[int, int], up: int = 1, down: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel(gain=float(up * up)))
        self.pad, self.up, self.down = pad, up, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p0, p1 = self.pad  # the same (before, after) padding on both axes
        return upfirdn2d(x, self.kernel, up=self.up, down=self.down, padding=(p0, p1, p0, p1))


class EqConv2d(nn.Module):
    """Bias-free convolution with equalised learning rate (weight * 1/sqrt(fan_in) at run time)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, stride=self.stride, padding=self.padding)


class BiasLReLU(nn.Module):
    """Per-channel bias followed by the sqrt(2)-gained leaky ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bias_act(x, self.bias, act="lrelu")


class EqDense(FullyConnectedLayer):
    """The shared equalised-lr dense layer with the port's arguments (act=True: bias + sqrt(2)-gained lrelu)."""

    def __init__(self, cin: int, cout: int, lr_mul: float = 1.0, act: bool = False, bias_init: float = 0.0) -> None:
        super().__init__(cin, cout, activation="lrelu" if act else "linear", lr_multiplier=lr_mul,
                         bias_init=bias_init)


def enc_conv(cin: int, cout: int, k: int, down: bool = False) -> nn.Sequential:
    """Encoder conv: [blur,] conv, bias + lrelu. Children are numbered like the port's ConvLayer."""
    if down:
        # blur pads (len(taps) - 2 + k - 1) split evenly, then a stride-2 valid convolution
        p = len(FIR_TAPS) - 2 + k - 1
        return nn.Sequential(FIRFilter(((p + 1) // 2, p // 2)), EqConv2d(cin, cout, k, stride=2), BiasLReLU(cout))
    return nn.Sequential(EqConv2d(cin, cout, k, padding=k // 2), BiasLReLU(cout))


class ModConv2d(nn.Module):
    """Modulated (optionally demodulated) convolution; `up` = transposed stride-2 conv then blur."""

    def __init__(self, cin: int, cout: int, k: int, style_dim: int, demodulate: bool = True, up: bool = False) -> None:
        super().__init__()
        if up:
            p = (len(FIR_TAPS) - 2) - (k - 1)
            self.blur = FIRFilter(((p + 1) // 2 + 1, p // 2 + 1), up=1)
            self.blur.kernel.mul_(4.0)  # upsampling gain factor**2
        self.weight = nn.Parameter(torch.randn(1, cout, cin, k, k))
        self.modulation = EqDense(style_dim, cin, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.cin, self.cout, self.k = cin, cout, k
        self.demodulate, self.up = demodulate, up
        self.conv_opts = ConvOptions(up=2 if up else 1, padding=k // 2, flip_weight=not up, filter_gain=1.0)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        # Plain convs correlate; the port's transposed conv uses the weight unflipped (flip_weight=False) and its
        # blur kernel already carries the gain of 4 (filter_gain=1).
        return modulated_conv2d(x, self.scale * self.weight, self.modulation(style), demodulate=self.demodulate,
                                resample_filter=self.blur.kernel if self.up else None, opts=self.conv_opts)


class NoiseStrength(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.weight * noise


class StyledLayer(nn.Module):
    """Modulated conv + scaled noise + bias + lrelu (port: StyledConv)."""

    def __init__(self, cin: int, cout: int, style_dim: int, up: bool = False) -> None:
        super().__init__()
        self.conv = ModConv2d(cin, cout, 3, style_dim, up=up)
        self.noise = NoiseStrength()
        self.activate = BiasLReLU(cout)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class RGBLayer(nn.Module):
    """1x1 modulated conv to RGB (no demodulation) + bias, plus the upsampled skip image."""

    def __init__(self, cin: int, style_dim: int, upsample: bool = True) -> None:
        super().__init__()
        if upsample:
            p = len(FIR_TAPS) - 2
            self.upsample = FIRFilter(((p + 1) // 2 + 1, p // 2), up=2)
        self.conv = ModConv2d(cin, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class MappingNetwork(nn.Module):
    """z -> w: pixel norm then `layers` dense+lrelu layers with lr multiplier 0.01."""

    def __init__(self, dim: int = 512, layers: int = 8, lr_mul: float = 0.01) -> None:
        super().__init__()
        self.G_mapping = nn.Sequential(OrderedDict(
            (f"Dense{i}", EqDense(dim, dim, lr_mul=lr_mul, act=True)) for i in range(layers)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(torch.mean(z ** 2, dim=1, keepdim=True) + 1e-8)
        return self.G_mapping(z)


class _FromRGB(nn.Module):
    def __init__(self, cout: int) -> None:
        super().__init__()
        self.FromRGB = enc_conv(4, cout, 1)


class _EncBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.Conv0 = enc_conv(cin, cin, 3)
        self.Conv1_down = enc_conv(cin, cout, 3, down=True)


class _EncFinal(nn.Module):
    def __init__(self, c: int, global_dim: int) -> None:
        super().__init__()
        self.Conv = enc_conv(c, c, 3)
        self.Dense0 = EqDense(c * 16, global_dim, act=True)


class _DecBlock0(nn.Module):
    def __init__(self, c: int, global_dim: int, style_dim: int) -> None:
        super().__init__()
        self.Dense = EqDense(global_dim, c * 16, act=True)
        self.Conv = StyledLayer(c, c, style_dim)
        self.ToRGB = RGBLayer(c, style_dim, upsample=False)


class _DecBlock(nn.Module):
    def __init__(self, cin: int, cout: int, style_dim: int) -> None:
        super().__init__()
        self.Conv0_up = StyledLayer(cin, cout, style_dim, up=True)
        self.Conv1 = StyledLayer(cout, cout, style_dim)
        self.ToRGB = RGBLayer(cout, style_dim)


def _nf(stage: int, fmap_base: int = 16 << 10, fmap_max: int = 512) -> int:
    """Feature maps at a stage (resolution 2**(stage+1)), as in StyleGAN2's nf()."""
    return int(min(max(int(fmap_base / (2.0 ** stage)), 1), fmap_max))


class SynthesisNetwork(nn.Module):
    """Encoder E (image+mask -> per-resolution features and the 1024-d global code) and the
    co-modulated skip decoder G_4x4 ... G_RxR."""

    def __init__(self, resolution: int = 512, dlatent_dim: int = 512, fmap_max: int = 512) -> None:
        super().__init__()
        log2 = int(round(math.log2(resolution)))
        if resolution != 2 ** log2 or resolution < 8:
            raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
        self.resolution, self.log2, self.fmap_max = resolution, log2, fmap_max

        def nf(stage: int) -> int:
            return _nf(stage, fmap_max=fmap_max)

        self.global_dim = nf(1) * 2
        style_dim = dlatent_dim + self.global_dim
        enc: list[tuple[str, nn.Module]] = [(f"{resolution}x{resolution}_0", _FromRGB(nf(log2 - 1)))]
        for res in range(log2, 2, -1):
            enc.append((f"{2 ** res}x{2 ** res}", _EncBlock(nf(res - 1), nf(res - 2))))
        enc.append(("4x4", _EncFinal(nf(1), self.global_dim)))
        self.E = nn.ModuleDict(OrderedDict(enc))
        self.G_4x4 = _DecBlock0(nf(1), self.global_dim, style_dim)
        for res in range(3, log2 + 1):
            setattr(self, f"G_{2 ** res}x{2 ** res}", _DecBlock(nf(res - 2), nf(res - 1), style_dim))

    @property
    def noise_shapes(self) -> list[tuple[int, int, int, int]]:
        """One [1,1,r,r] map per styled conv, in order: G_4x4.Conv, then Conv0_up, Conv1 per resolution."""
        shapes = [(1, 1, 4, 4)]
        for res in range(3, self.log2 + 1):
            shapes += [(1, 1, 2 ** res, 2 ** res)] * 2
        return shapes

    def encode(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Encoder: returns the global code (before dropout) and the features after each Conv0."""
        feats: dict[int, torch.Tensor] = {}
        x = torch.cat([masks - 0.5, images * masks], dim=1)
        r = self.resolution
        x = self.E[f"{r}x{r}_0"].FromRGB(x)
        for res in range(self.log2, 2, -1):
            blk = self.E[f"{2 ** res}x{2 ** res}"]
            x = blk.Conv0(x)
            feats[res] = x
            x = blk.Conv1_down(x)
        fin = self.E["4x4"]
        x = fin.Conv(x)
        return fin.Dense0(x.reshape(x.shape[0], -1)), feats

    def decode(self, x_global: torch.Tensor, feats: dict[int, torch.Tensor], w: torch.Tensor,
               noise: Sequence[torch.Tensor]) -> torch.Tensor:
        """Skip decoder; every layer is modulated by [w, x_global] (a single w, no style mixing)."""
        style = torch.cat([w, x_global], dim=1)
        b0 = self.G_4x4
        x = b0.Dense(x_global).view(-1, _nf(1, fmap_max=self.fmap_max), 4, 4)
        x = b0.Conv(x, style, noise[0])
        y = b0.ToRGB(x, style)
        for i, res in enumerate(range(3, self.log2 + 1)):
            blk = getattr(self, f"G_{2 ** res}x{2 ** res}")
            x = blk.Conv0_up(x, style, noise[1 + 2 * i])
            x = x + feats[res]
            x = blk.Conv1(x, style, noise[2 + 2 * i])
            y = blk.ToRGB(x, style, skip=y)
        return y


class GeneratorOutput(NamedTuple):
    composited: torch.Tensor  # raw * (1 - m) + image * m
    raw: torch.Tensor  # the decoder's skip output, no tanh/clamp
    dlatent: torch.Tensor  # w, [B, 512]
    x_global: torch.Tensor  # global code after dropout (if any), [B, 1024]


class CoModGenerator(nn.Module):
    """The port's `Generator`: G_mapping + G_synthesis. Images in [-1, 1], masks 1 = known."""

    def __init__(self, resolution: int = 512, latent_dim: int = 512, fmap_max: int = 512) -> None:
        # fmap_max < 512 gives narrow test networks with the same structure; released weights use 512.
        super().__init__()
        self.latent_dim = latent_dim
        self.G_mapping = MappingNetwork(latent_dim)
        self.G_synthesis = SynthesisNetwork(resolution, latent_dim, fmap_max)

    @property
    def resolution(self) -> int:
        return self.G_synthesis.resolution

    @property
    def global_dim(self) -> int:
        return self.G_synthesis.global_dim

    @property
    def noise_shapes(self) -> list[tuple[int, int, int, int]]:
        return self.G_synthesis.noise_shapes

    def forward(self, images: torch.Tensor, masks: torch.Tensor, latents: torch.Tensor,
                noise: Sequence[torch.Tensor] | None = None,
                dropout_keep: torch.Tensor | None = None,
                dropout_rate: float = 0.5) -> GeneratorOutput:
        """images [B,3,R,R] in [-1,1]; masks [B,1,R,R] 1 = known; latents z [B,512].

        noise: one map per styled conv ([1 or B, 1, r, r], see `noise_shapes`); None draws fresh
        N(0,1) maps from the global RNG (the original's behaviour; not reproducible).
        dropout_keep: [B, 1024] 0/1 keep mask for the global code (official: always on, rate 0.5);
        None = no dropout (the port in eval()).
        """
        r = self.resolution
        if images.shape[-2:] != (r, r) or masks.shape[-2:] != (r, r):
            raise ValueError(f"CoModGAN generator needs {r}x{r} inputs, got {tuple(images.shape)}")
        if noise is None:
            b = images.shape[0]
            noise = [torch.randn(b, *s[1:], device=images.device, dtype=images.dtype) for s in self.noise_shapes]
        if len(noise) != len(self.noise_shapes):
            raise ValueError(f"expected {len(self.noise_shapes)} noise maps, got {len(noise)}")
        w = self.G_mapping(latents)
        x_global, feats = self.G_synthesis.encode(images, masks)
        if dropout_keep is not None:
            x_global = x_global * dropout_keep.to(x_global.dtype) * (1.0 / (1.0 - dropout_rate))
        raw = self.G_synthesis.decode(x_global, feats, w, noise)
        composited = raw * (1 - masks) + images * masks
        return GeneratorOutput(composited, raw, w, x_global)
