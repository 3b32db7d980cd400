"""MI-GAN generator (Sargsyan et al., ICCV 2023), written for matbench from the paper and the released
inference model's structure (Picsart-AI-Research/MI-GAN, lib/model_zoo/migan_inference.py).

Parameter and buffer names equal the released `.pt` state dicts (migan_256_places2.pt, ...), so those
load strictly. Shape of the network (all convolutions depthwise-separable):

- input: 4 channels [known_mask - 0.5, image * known_mask], image in [-1, 1], mask 1 = known;
- encoder: `b{res}` blocks from the input resolution down to 8 (each: two separable convs, the second
  with a [1,3,3,1] blur-downsample between its depthwise and pointwise parts), then `b4` without
  downsampling; every block's first-conv output is kept as a skip feature;
- synthesis: `b4` (two separable convs, skip added in between, 1x1 to RGB), then `b{res}` blocks up
  to the output resolution (zero-insertion x2 upsampling + [1,3,3,1] filter, a fixed per-resolution
  noise map times a learned strength, skip added, RGB skip-connected upwards as in StyleGAN2);
- activations: leaky ReLU 0.2 times sqrt(2), clamped to +-256.

The generator works at one fixed resolution (the upsampling masks and noise maps have that size).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from matbench.models.layers import bias_act, downsample2d, make_filter, upfirdn2d

CH_BASE = 32768
CH_MAX = 512


def channels(res: int) -> int:
    return min(CH_BASE // res, CH_MAX)


def lrelu_clamped(x: torch.Tensor) -> torch.Tensor:
    """The StyleGAN2 'lrelu' with gain sqrt(2) and clamp 256 used after every conv."""
    return bias_act(x, act="lrelu", clamp=256.0)


def blur_kernel(gain: float) -> torch.Tensor:
    """Outer product of [1, 3, 3, 1], normalised to sum 1, times gain (a 2-D filter: gain applies once)."""
    return make_filter((1.0, 3.0, 3.0, 1.0), gain=gain)


class Downsample2d(nn.Module):
    """Blur and stride 2 (depthwise 4x4 conv, padding 1). The filter is a parameter in the released files."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.filter = nn.Conv2d(ch, ch, 4, stride=2, padding=1, groups=ch, bias=False)
        with torch.no_grad():
            self.filter.weight.copy_(blur_kernel(1.0).expand(ch, 1, 4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # per-channel stored filter, applied as nn.Conv2d does (correlation); pads 1 on each side
        return downsample2d(x, self.filter.weight, flip_filter=True)


class Upsample2d(nn.Module):
    """x2 by zero insertion (nearest then keep the top-left of each 2x2), pad (2,1,2,1), blur with gain 4."""

    def __init__(self, ch: int, resolution: int) -> None:
        super().__init__()
        keep = torch.zeros(2, 2)
        keep[0, 0] = 1.0
        self.register_buffer("filter_const", keep.repeat(1, 1, resolution // 2, resolution // 2))
        self.filter = nn.Conv2d(ch, ch, 4, groups=ch, bias=False)
        with torch.no_grad():
            self.filter.weight.copy_(blur_kernel(4.0).expand(ch, 1, 4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # zero insertion through the stored mask (the released model's way), then the shared FIR step; the
        # stored filter carries the gain of 4
        x = F.interpolate(x, scale_factor=2, mode="nearest") * self.filter_const
        return upfirdn2d(x, self.filter.weight, padding=(2, 1, 2, 1), flip_filter=True)


class SeparableConv2d(nn.Module):
    """Depthwise kxk (with bias) -> act -> [down] -> pointwise 1x1 (no bias) -> [up] -> [+noise] -> act."""

    def __init__(self, cin: int, cout: int, *, resolution: int | None = None, noise: bool = False,
                 down: bool = False, up: bool = False) -> None:
        super().__init__()
        if noise:  # registered first: the released state dicts list these before the convs
            self.noise_strength = nn.Parameter(torch.zeros([]))
            self.register_buffer("noise_const", torch.zeros(resolution, resolution))
        self.use_noise = noise
        self.conv1 = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=True)
        self.conv2 = nn.Conv2d(cin, cout, 1, bias=False)
        self.downsample = Downsample2d(cin) if down else None
        self.upsample = Upsample2d(cout, resolution) if up else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = lrelu_clamped(self.conv1(x))
        if self.downsample is not None:
            x = self.downsample(x)
        x = self.conv2(x)
        if self.upsample is not None:
            x = self.upsample(x)
        if self.use_noise:
            x = x + self.noise_const * self.noise_strength
        return lrelu_clamped(x)


class EncoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, rgb_in: int | None = None, down: bool = True) -> None:
        super().__init__()
        self.fromrgb = nn.Conv2d(rgb_in, cin, 1) if rgb_in is not None else None
        self.conv1 = SeparableConv2d(cin, cin)
        self.conv2 = SeparableConv2d(cin, cout, down=down)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fromrgb is not None:
            y = lrelu_clamped(self.fromrgb(img))
            x = y if x is None else x + y
        feat = self.conv1(x)
        return self.conv2(feat), feat


class Encoder(nn.Module):
    def __init__(self, resolution: int, in_channels: int = 4) -> None:
        super().__init__()
        self.res = [2 ** i for i in range(int(math.log2(resolution)), 1, -1)]  # r, r/2, ..., 4
        for i, (a, b) in enumerate(zip(self.res[:-1], self.res[1:], strict=True)):
            setattr(self, f"b{a}", EncoderBlock(channels(a), channels(b), rgb_in=in_channels if i == 0 else None))
        self.b4 = EncoderBlock(channels(4), channels(4), down=False)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        x: torch.Tensor | None = None
        feats = {}
        for r in self.res:
            x, feats[r] = getattr(self, f"b{r}")(x, img)
        assert x is not None
        return x, feats


class SynthesisFirst(nn.Module):
    def __init__(self, ch: int, rgb: int = 3) -> None:
        super().__init__()
        self.conv1 = SeparableConv2d(ch, ch)
        self.conv2 = SeparableConv2d(ch, ch)
        self.torgb = nn.Conv2d(ch, rgb, 1)

    def forward(self, x: torch.Tensor, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv2(self.conv1(x) + feat)
        return x, self.torgb(x)


class SynthesisBlock(nn.Module):
    def __init__(self, cin: int, cout: int, resolution: int, rgb: int = 3) -> None:
        super().__init__()
        self.conv1 = SeparableConv2d(cin, cout, resolution=resolution, noise=True, up=True)
        self.conv2 = SeparableConv2d(cout, cout, resolution=resolution, noise=True)
        self.torgb = nn.Conv2d(cout, rgb, 1)
        self.upsample = Upsample2d(rgb, resolution)

    def forward(self, x: torch.Tensor, feat: torch.Tensor, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv2(self.conv1(x) + feat)
        return x, self.upsample(img) + self.torgb(x)


class Synthesis(nn.Module):
    def __init__(self, resolution: int, rgb: int = 3) -> None:
        super().__init__()
        self.res = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]  # 4, 8, ..., r
        self.b4 = SynthesisFirst(channels(4), rgb)
        for a, b in zip(self.res[:-1], self.res[1:], strict=True):
            setattr(self, f"b{b}", SynthesisBlock(channels(a), channels(b), b, rgb))

    def forward(self, x: torch.Tensor, feats: dict[int, torch.Tensor]) -> torch.Tensor:
        x, img = self.b4(x, feats[4])
        for r in self.res[1:]:
            x, img = getattr(self, f"b{r}")(x, feats[r], img)
        return img


class MIGANGenerator(nn.Module):
    """4-channel input [mask - 0.5, image * mask] at `resolution` -> RGB in about [-1, 1]."""

    def __init__(self, resolution: int = 512) -> None:
        super().__init__()
        if resolution < 8 or 2 ** int(math.log2(resolution)) != resolution:
            raise ValueError(f"MI-GAN resolution must be a power of two >= 8, got {resolution}")
        self.resolution = resolution
        # Same registration order as the released files (synthesis first).
        self.synthesis = Synthesis(resolution)
        self.encoder = Encoder(resolution)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, feats = self.encoder(x)
        return self.synthesis(x, feats)


def generator_input(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """image float in [-1, 1] [N,3,H,W], known float 0/1 [N,1,H,W] -> the 4-channel generator input."""
    return torch.cat([known - 0.5, image * known], dim=1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
