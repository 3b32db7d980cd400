"""MAT generator (Li et al., CVPR 2022, "MAT: Mask-Aware Transformer for Large Hole Image Inpainting").

An independent implementation whose parameter and buffer names and shapes equal the official generator's (as
`generate_image.py` builds it), so released checkpoints load by name. Structure:

- mapping: StyleGAN-style MLP z -> w (8 layers in the released checkpoints, 2 in the paper's model summary),
  broadcast to `num_ws` rows, optional truncation towards the tracked average `w_avg`.
- synthesis.first_stage (coarse): partial-conv head down to 64x64 tokens (dim 180), five transformer stages
  (depths 2,3,4,3,2; windows 8,16,16,16,8; 64->32->16->32->64 tokens) built from the adjusted block
  (concatenate + fuse instead of residual, no layer norm) with multi-head contextual attention that attends only
  to valid tokens and updates the mask (a window becomes valid once it contains any valid token); a global style
  from the bottleneck; a style-modulated conv decoder back to the input size.
- synthesis.enc / to_style / dec (refinement): a conv U-Net whose decoder is style-modulated by (w, global code).

Quirk kept on purpose: the official forward applies dropout(p=0.5) to a constant map even in eval mode, in
both stages, mixing features with a w-derived map. Here the two 0/1 maps are explicit inputs (`dropout_maps`),
or are drawn from a caller-supplied torch.Generator; the global RNG is never used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from matbench.models.layers import (
    ConvOptions,
    FullyConnectedLayer,
    bias_act,
    conv2d_resample,
    default_gain,
    make_filter,
    modulated_conv2d,
    upsample2d,
)

NOISE_MODES = ("const", "random", "none")


@dataclass(frozen=True)
class StyleConvOptions:
    """The settings every StyleConv of a decoder shares (the decoder blocks build one and pass it down)."""

    use_noise: bool = True
    activation: str = "lrelu"
    demodulate: bool = True


@dataclass(frozen=True)
class Noise:
    """Where one Generator call draws its randomness: per-pixel noise mode, its generator(s), the dropout maps.

    mode: one of NOISE_MODES; generator: one torch.Generator, or one per image ('random' needs it; without maps it
    also draws them); dropout_maps: the two {0,1} maps of draw_dropout_maps, or None to draw them.
    """

    mode: str = "const"
    generator: torch.Generator | Sequence[torch.Generator] | None = None
    dropout_maps: tuple[torch.Tensor, torch.Tensor] | None = None


DEFAULT_STYLE_CONV = StyleConvOptions()
CONST_NOISE = Noise()
TOKEN_DIM = 180  # channel width of the first (transformer) stage


def channels_at(res_log2: int) -> int:
    """Channel count of the second-stage U-Net at resolution 2**res_log2."""
    return {9: 64, 8: 128, 7: 256}.get(res_log2, 512)


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# --------------------------------------------------------------------------- basic layers


class Conv2dLayer(nn.Module):
    """Equalized-lr convolution with optional FIR up/downsampling by 2, bias and activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1) -> None:
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.register_buffer("resample_filter", make_filter())
        self.padding = kernel_size // 2
        self.conv_opts = ConvOptions(up=up, down=down, padding=self.padding)
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = default_gain(activation)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        x = conv2d_resample(x, w, f=self.resample_filter, opts=self.conv_opts)
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution (per-sample weights via grouped conv), optional demodulation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, up: int = 1, down: int = 1) -> None:
        super().__init__()
        self.demodulate = demodulate
        self.weight = nn.Parameter(torch.randn([1, out_channels, in_channels, kernel_size, kernel_size]))
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2
        self.up = up
        self.down = down
        self.conv_opts = ConvOptions(up=up, down=down, padding=self.padding)
        self.register_buffer("resample_filter", make_filter())
        self.affine = FullyConnectedLayer(style_dim, in_channels, bias_init=1)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return modulated_conv2d(x, self.weight * self.weight_gain, self.affine(style), demodulate=self.demodulate,
                                resample_filter=self.resample_filter, opts=self.conv_opts)


def _noise_like(x: torch.Tensor, generator: torch.Generator | Sequence[torch.Generator] | None) -> torch.Tensor:
    """Per-pixel N(0,1) noise [N,1,H,W], drawn on CPU from the given generator(s) (one per image if a sequence)."""
    n, _, h, w = x.shape
    if generator is None:
        raise ValueError("noise_mode='random' needs a noise_generator (the global RNG is never used)")
    if isinstance(generator, torch.Generator):
        noise = torch.randn([n, 1, h, w], generator=generator)
    else:
        if len(generator) != n:
            raise ValueError(f"{len(generator)} noise generators for a batch of {n}")
        noise = torch.cat([torch.randn([1, 1, h, w], generator=g) for g in generator])
    return noise.to(device=x.device, dtype=x.dtype)


class StyleConv(nn.Module):
    """Modulated conv + per-pixel noise (const / random / none) + bias + activation."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, opts: StyleConvOptions = DEFAULT_STYLE_CONV) -> None:
        super().__init__()
        use_noise, activation = opts.use_noise, opts.activation
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, demodulate=opts.demodulate,
                                    up=up)
        self.use_noise = use_noise
        self.resolution = resolution
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.activation = activation
        self.act_gain = default_gain(activation)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise_mode: str = "const",
                noise_generator: torch.Generator | Sequence[torch.Generator] | None = None) -> torch.Tensor:
        x = self.conv(x, style)
        if self.use_noise and noise_mode != "none":
            if noise_mode == "const":
                if tuple(self.noise_const.shape) != tuple(x.shape[-2:]):
                    raise ValueError(f"noise_mode='const' needs {self.resolution}x{self.resolution} features here, "
                                     f"got {tuple(x.shape[-2:])}; use 'random' or 'none' for other sizes")
                x = x + self.noise_const * self.noise_strength
            else:
                x = x + _noise_like(x, noise_generator) * self.noise_strength
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain)


class ToRGB(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, style_dim: int, kernel_size: int = 1,
                 demodulate: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, demodulate=demodulate)
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("resample_filter", make_filter())

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = bias_act(self.conv(x, style), self.bias)
        if skip is not None:
            if skip.shape != out.shape:
                skip = upsample2d(skip, self.resample_filter)
            out = out + skip
        return out


class Conv2dLayerPartial(nn.Module):
    """Partial convolution: output rescaled by (window size / valid count), mask -> 1 where any input is valid."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, activation: str = "linear",
                 up: int = 1, down: int = 1) -> None:
        super().__init__()
        self.conv = Conv2dLayer(in_channels, out_channels, kernel_size, activation=activation, up=up, down=down)
        self.kernel_size = kernel_size
        self.slide_winsize = kernel_size**2
        self.stride = down
        self.padding = kernel_size // 2 if kernel_size % 2 == 1 else 0

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if mask is None:
            return self.conv(x), None
        with torch.no_grad():
            ones = torch.ones(1, 1, self.kernel_size, self.kernel_size, device=mask.device, dtype=mask.dtype)
            count = F.conv2d(mask, ones, stride=self.stride, padding=self.padding)
            ratio = self.slide_winsize / (count + 1e-8)
            new_mask = torch.clamp(count, 0, 1)
            ratio = ratio * new_mask
        return self.conv(x) * ratio, new_mask


# --------------------------------------------------------------------------- transformer (first stage)


def to_feature(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Tokens [B, H*W, C] -> feature map [B, C, H, W]."""
    b, _, c = x.shape
    return x.permute(0, 2, 1).reshape(b, c, size[0], size[1])


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """Feature map [B, C, H, W] -> tokens [B, H*W, C]."""
    b, c = x.shape[:2]
    return x.view(b, c, -1).transpose(1, 2)


def split_windows(x: torch.Tensor, ws: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * (H/ws) * (W/ws), ws, ws, C], windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, c)


def merge_windows(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of split_windows."""
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


def shifted_window_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    """Additive attention mask for shifted windows: 0 within a region, -100 across the roll seam regions."""
    region = torch.zeros((1, h, w, 1))
    bounds_h = ((0, h - ws), (h - ws, h - shift), (h - shift, h))
    bounds_w = ((0, w - ws), (w - ws, w - shift), (w - shift, w))
    label = 0
    for h0, h1 in bounds_h:
        for w0, w1 in bounds_w:
            region[:, h0:h1, w0:w1, :] = label
            label += 1
    win = split_windows(region, ws).view(-1, ws * ws)
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class WindowAttention(nn.Module):
    """Multi-head contextual attention: keys from invalid tokens get -100; the mask grows per window."""

    def __init__(self, dim: int, window_size: tuple[int, int], num_heads: int) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = FullyConnectedLayer(dim, dim)
        self.k = FullyConnectedLayer(dim, dim)
        self.v = FullyConnectedLayer(dim, dim)
        self.proj = FullyConnectedLayer(dim, dim)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor, mask_windows: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        b_, n, c = x.shape
        heads, hd = self.num_heads, c // self.num_heads
        xn = F.normalize(x, p=2.0, dim=-1)  # q and k see unit-norm tokens, v the raw ones
        q = self.q(xn).reshape(b_, n, heads, hd).permute(0, 2, 1, 3)
        k = self.k(xn).view(b_, -1, heads, hd).permute(0, 2, 3, 1)
        v = self.v(x).view(b_, -1, heads, hd).permute(0, 2, 1, 3)
        attn = (q @ k) * self.scale
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, heads, n, n)
        if mask_windows is not None:
            valid = mask_windows.squeeze(-1).unsqueeze(1).unsqueeze(1)
            attn = attn + valid.masked_fill(valid == 0, -100.0).masked_fill(valid == 1, 0.0)
            with torch.no_grad():
                mask_windows = torch.clamp(mask_windows.sum(dim=1, keepdim=True), 0, 1).repeat(1, n, 1)
        attn = self.softmax(attn)
        x = (attn @ v).transpose(1, 2).reshape(b_, n, c)
        return self.proj(x), mask_windows


class SwinTransformerBlock(nn.Module):
    """Adjusted transformer block: (shifted-)window attention, concat with input + fuse FC, then MLP; no norm."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int, window_size: int = 7,
                 shift_size: int = 0, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.dim = dim
        self.input_resolution = tuple(input_resolution)
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = shift_size
        if min(self.input_resolution) <= self.window_size:
            self.shift_size = 0
            self.window_size = min(self.input_resolution)
        self.attn = WindowAttention(dim, (self.window_size, self.window_size), num_heads)
        self.fuse = FullyConnectedLayer(dim * 2, dim, activation="lrelu")
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = None
        if self.shift_size > 0:
            mask = shifted_window_mask(*self.input_resolution, self.window_size, self.shift_size)
        self.register_buffer("attn_mask", mask)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int],
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        h, w = x_size
        b, n_tok, c = x.shape
        if n_tok != h * w:
            raise ValueError(f"{n_tok} tokens for a {h}x{w} grid")
        ws, sh = self.window_size, self.shift_size
        shortcut = x
        x = x.view(b, h, w, c)
        if mask is not None:
            mask = mask.view(b, h, w, 1)
        if sh > 0:
            x = torch.roll(x, shifts=(-sh, -sh), dims=(1, 2))
            if mask is not None:
                mask = torch.roll(mask, shifts=(-sh, -sh), dims=(1, 2))
        xw = split_windows(x, ws).view(-1, ws * ws, c)
        mw = split_windows(mask, ws).view(-1, ws * ws, 1) if mask is not None else None
        attn_mask = None
        if sh > 0:  # non-shifted blocks: the official adds an all-zero mask, i.e. nothing
            if (h, w) == self.input_resolution and self.attn_mask is not None:
                attn_mask = self.attn_mask
            else:
                attn_mask = shifted_window_mask(h, w, ws, sh).to(x.device)
        yw, mw = self.attn(xw, mw, mask=attn_mask)
        x = merge_windows(yw.view(-1, ws, ws, c), ws, h, w)
        if mw is not None:
            mask = merge_windows(mw.view(-1, ws, ws, 1), ws, h, w)
        if sh > 0:
            x = torch.roll(x, shifts=(sh, sh), dims=(1, 2))
            if mask is not None:
                mask = torch.roll(mask, shifts=(sh, sh), dims=(1, 2))
        x = x.view(b, h * w, c)
        if mask is not None:
            mask = mask.view(b, h * w, 1)
        x = self.fuse(torch.cat([shortcut, x], dim=-1))
        return self.mlp(x), mask


class Mlp(nn.Module):
    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.fc1 = FullyConnectedLayer(in_features, hidden_features, activation="lrelu")
        self.fc2 = FullyConnectedLayer(hidden_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class PatchResample(nn.Module):
    """Token grid down- (PatchMerging) or upsampling (PatchUpsampling) by a partial 3x3 conv."""

    def __init__(self, in_channels: int, out_channels: int, down: int = 1, up: int = 1) -> None:
        super().__init__()
        self.conv = Conv2dLayerPartial(in_channels, out_channels, 3, activation="lrelu", up=up, down=down)
        self.down = down
        self.up = up

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], mask: torch.Tensor | None = None):
        x = to_feature(x, x_size)
        if mask is not None:
            mask = to_feature(mask, x_size)
        x, mask = self.conv(x, mask)
        x_size = (x.shape[2], x.shape[3])
        return to_tokens(x), x_size, (to_tokens(mask) if mask is not None else None)


class BasicLayer(nn.Module):
    """One transformer stage: optional resampling, `depth` blocks (odd ones shifted), partial conv + residual."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float = 2.0, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.depth = depth
        self.downsample = downsample
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, input_resolution, num_heads, window_size=window_size,
                                 shift_size=0 if i % 2 == 0 else window_size // 2, mlp_ratio=mlp_ratio)
            for i in range(depth)
        ])
        self.conv = Conv2dLayerPartial(dim, dim, 3, activation="lrelu")

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], mask: torch.Tensor | None = None):
        if self.downsample is not None:
            x, x_size, mask = self.downsample(x, x_size, mask)
        identity = x
        for blk in self.blocks:
            x, mask = blk(x, x_size, mask)
        if mask is not None:
            mask = to_feature(mask, x_size)
        x, mask = self.conv(to_feature(x, x_size), mask)
        x = to_tokens(x) + identity
        if mask is not None:
            mask = to_tokens(mask)
        return x, x_size, mask


class DecStyleBlock(nn.Module):
    """First-stage decoder block: upsampling style conv + skip, style conv, ToRGB with image skip."""

    def __init__(self, res: int, in_channels: int, out_channels: int, activation: str, style_dim: int,
                 use_noise: bool, demodulate: bool, img_channels: int) -> None:
        super().__init__()
        self.res = res
        opts = StyleConvOptions(use_noise=use_noise, activation=activation, demodulate=demodulate)
        self.conv0 = StyleConv(in_channels, out_channels, style_dim, res, 3, up=2, opts=opts)
        self.conv1 = StyleConv(out_channels, out_channels, style_dim, res, 3, opts=opts)
        self.toRGB = ToRGB(out_channels, img_channels, style_dim, kernel_size=1, demodulate=False)

    def forward(self, x, img, style, skip, noise_mode="const", noise_generator=None):
        x = self.conv0(x, style, noise_mode=noise_mode, noise_generator=noise_generator)
        x = x + skip
        x = self.conv1(x, style, noise_mode=noise_mode, noise_generator=noise_generator)
        return x, self.toRGB(x, style, skip=img)


class FirstStage(nn.Module):
    """Coarse stage: conv head, transformer body with mask-aware attention, style-modulated conv decoder."""

    DEPTHS = (2, 3, 4, 3, 2)
    RATIOS = (1, 0.5, 0.5, 2, 2)
    WINDOWS = (8, 16, 16, 16, 8)
    HEADS = 6

    def __init__(self, img_channels: int, img_resolution: int = 256, dim: int = TOKEN_DIM, w_dim: int = 512,
                 use_noise: bool = False, demodulate: bool = True, activation: str = "lrelu") -> None:
        super().__init__()
        res = 64
        self.conv_first = Conv2dLayerPartial(img_channels + 1, dim, 3, activation=activation)
        down_time = int(math.log2(img_resolution // res))
        self.enc_conv = nn.ModuleList([Conv2dLayerPartial(dim, dim, 3, down=2, activation=activation)
                                       for _ in range(down_time)])
        self.tran = nn.ModuleList()
        for depth, ratio, win in zip(self.DEPTHS, self.RATIOS, self.WINDOWS, strict=True):
            res = int(res * ratio)
            if ratio < 1:
                merge = PatchResample(dim, dim, down=int(1 / ratio))
            elif ratio > 1:
                merge = PatchResample(dim, dim, up=int(ratio))
            else:
                merge = None
            self.tran.append(BasicLayer(dim, (res, res), depth, self.HEADS, win, downsample=merge))
        self.down_conv = nn.Sequential(
            *[Conv2dLayer(dim, dim, 3, down=2, activation=activation) for _ in range(4)],
            nn.AdaptiveAvgPool2d((1, 1)),
        )
        self.to_style = FullyConnectedLayer(dim, dim * 2, activation=activation)
        self.ws_style = FullyConnectedLayer(w_dim, dim, activation=activation)
        self.to_square = FullyConnectedLayer(dim, 16 * 16, activation=activation)
        self.dec_conv = nn.ModuleList()
        for _ in range(down_time):
            res = res * 2
            self.dec_conv.append(DecStyleBlock(res, dim, dim, activation, dim * 3, use_noise, demodulate,
                                               img_channels))

    def forward(self, images: torch.Tensor, masks: torch.Tensor, ws: torch.Tensor, dropout_map: torch.Tensor,
                noise_mode: str = "const", noise_generator=None) -> torch.Tensor:
        x = torch.cat([masks - 0.5, images * masks], dim=1)
        skips = []
        x, mask = self.conv_first(x, masks)
        skips.append(x)
        for i, block in enumerate(self.enc_conv):
            x, mask = block(x, mask)
            if i != len(self.enc_conv) - 1:
                skips.append(x)
        x_size = (x.shape[2], x.shape[3])
        x = to_tokens(x)
        mask = to_tokens(mask)
        mid = len(self.tran) // 2
        style = None
        for i, block in enumerate(self.tran):
            if i < mid:
                x, x_size, mask = block(x, x_size, mask)
                skips.append(x)
            elif i > mid:
                x, x_size, _ = block(x, x_size, None)
                x = x + skips[mid - i]
            else:
                # Bottleneck (mask no longer tracked): mix tokens with a w-derived map where the dropout map is 0.
                x, x_size, _ = block(x, x_size, None)
                if tuple(dropout_map.shape) != tuple(x.shape):
                    raise ValueError(f"first-stage dropout map {tuple(dropout_map.shape)} != tokens {tuple(x.shape)}")
                m = dropout_map.to(x.dtype)
                wst = self.ws_style(ws[:, -1])
                add_n = self.to_square(wst).unsqueeze(1)
                add_n = F.interpolate(add_n, size=x.size(1), mode="linear", align_corners=False)
                add_n = add_n.squeeze(1).unsqueeze(-1)
                x = x * m + add_n * (1 - m)
                gs = self.to_style(self.down_conv(to_feature(x, x_size)).flatten(start_dim=1))
                style = torch.cat([gs, wst], dim=1)
        x = to_feature(x, x_size).contiguous()
        img = None
        n_dec = len(self.dec_conv)
        for i, block in enumerate(self.dec_conv):
            x, img = block(x, img, style, skips[n_dec - i - 1], noise_mode=noise_mode,
                           noise_generator=noise_generator)
        return img * (1 - masks) + images * masks


# --------------------------------------------------------------------------- second stage


class EncFromRGB(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, activation: str) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, out_channels, 1, activation=activation)
        self.conv1 = Conv2dLayer(out_channels, out_channels, 3, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv0(x))


class ConvBlockDown(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, activation: str) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, out_channels, 3, activation=activation, down=2)
        self.conv1 = Conv2dLayer(out_channels, out_channels, 3, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv0(x))


class Encoder(nn.Module):
    def __init__(self, res_log2: int, img_channels: int, activation: str) -> None:
        super().__init__()
        self.resolution_log2s = list(range(res_log2, 3, -1))
        for i in self.resolution_log2s:
            block = (EncFromRGB(img_channels * 2 + 1, channels_at(i), activation) if i == res_log2
                     else ConvBlockDown(channels_at(i + 1), channels_at(i), activation))
            setattr(self, f"EncConv_Block_{2**i}x{2**i}", block)

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        out = {}
        for i in self.resolution_log2s:
            x = getattr(self, f"EncConv_Block_{2**i}x{2**i}")(x)
            out[i] = x
        return out


class ToStyle(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, activation: str) -> None:
        super().__init__()
        self.conv = nn.Sequential(*[Conv2dLayer(in_channels, in_channels, 3, activation=activation, down=2)
                                    for _ in range(3)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = FullyConnectedLayer(in_channels, out_channels, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv(x)).flatten(start_dim=1))


class DecBlockFirstV2(nn.Module):
    def __init__(self, res: int, in_channels: int, out_channels: int, activation: str, style_dim: int,
                 use_noise: bool, demodulate: bool, img_channels: int) -> None:
        super().__init__()
        self.res = res
        opts = StyleConvOptions(use_noise=use_noise, activation=activation, demodulate=demodulate)
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3, activation=activation)
        self.conv1 = StyleConv(in_channels, out_channels, style_dim, 2**res, 3, opts=opts)
        self.toRGB = ToRGB(out_channels, img_channels, style_dim, kernel_size=1, demodulate=False)

    def forward(self, x, ws, gs, feats, noise_mode="const", noise_generator=None):
        x = self.conv0(x) + feats[self.res]
        x = self.conv1(x, torch.cat([ws[:, 0], gs], dim=1), noise_mode=noise_mode, noise_generator=noise_generator)
        return x, self.toRGB(x, torch.cat([ws[:, 1], gs], dim=1), skip=None)


class DecBlock(nn.Module):
    def __init__(self, res: int, in_channels: int, out_channels: int, activation: str, style_dim: int,
                 use_noise: bool, demodulate: bool, img_channels: int) -> None:
        super().__init__()
        self.res = res
        opts = StyleConvOptions(use_noise=use_noise, activation=activation, demodulate=demodulate)
        self.conv0 = StyleConv(in_channels, out_channels, style_dim, 2**res, 3, up=2, opts=opts)
        self.conv1 = StyleConv(out_channels, out_channels, style_dim, 2**res, 3, opts=opts)
        self.toRGB = ToRGB(out_channels, img_channels, style_dim, kernel_size=1, demodulate=False)

    def forward(self, x, img, ws, gs, feats, noise_mode="const", noise_generator=None):
        i = self.res * 2 - 9  # ws rows 2*res-9 .. 2*res-7
        x = self.conv0(x, torch.cat([ws[:, i], gs], dim=1), noise_mode=noise_mode, noise_generator=noise_generator)
        x = x + feats[self.res]
        x = self.conv1(x, torch.cat([ws[:, i + 1], gs], dim=1), noise_mode=noise_mode,
                       noise_generator=noise_generator)
        return x, self.toRGB(x, torch.cat([ws[:, i + 2], gs], dim=1), skip=img)


class Decoder(nn.Module):
    def __init__(self, res_log2: int, activation: str, style_dim: int, use_noise: bool, demodulate: bool,
                 img_channels: int) -> None:
        super().__init__()
        self.Dec_16x16 = DecBlockFirstV2(4, channels_at(4), channels_at(4), activation, style_dim, use_noise,
                                         demodulate, img_channels)
        for res in range(5, res_log2 + 1):
            setattr(self, f"Dec_{2**res}x{2**res}",
                    DecBlock(res, channels_at(res - 1), channels_at(res), activation, style_dim, use_noise,
                             demodulate, img_channels))
        self.res_log2 = res_log2

    def forward(self, x, ws, gs, feats, noise_mode="const", noise_generator=None):
        x, img = self.Dec_16x16(x, ws, gs, feats, noise_mode=noise_mode, noise_generator=noise_generator)
        for res in range(5, self.res_log2 + 1):
            x, img = getattr(self, f"Dec_{2**res}x{2**res}")(x, img, ws, gs, feats, noise_mode=noise_mode,
                                                               noise_generator=noise_generator)
        return img


class SynthesisNet(nn.Module):
    def __init__(self, w_dim: int, img_resolution: int, img_channels: int = 3, activation: str = "lrelu",
                 use_noise: bool = True, demodulate: bool = True) -> None:
        super().__init__()
        res_log2 = int(math.log2(img_resolution))
        if img_resolution != 2**res_log2 or img_resolution < 64:
            raise ValueError(f"resolution must be a power of two >= 64, got {img_resolution}")
        self.num_layers = res_log2 * 2 - 6
        self.img_resolution = img_resolution
        self.resolution_log2 = res_log2
        self.first_stage = FirstStage(img_channels, img_resolution=img_resolution, w_dim=w_dim, use_noise=False,
                                      demodulate=demodulate)
        self.enc = Encoder(res_log2, img_channels, activation)
        self.to_square = FullyConnectedLayer(w_dim, 16 * 16, activation=activation)
        self.to_style = ToStyle(channels_at(4), channels_at(2) * 2, activation)
        self.dec = Decoder(res_log2, activation, w_dim + channels_at(2) * 2, use_noise, demodulate, img_channels)

    def forward(self, images, masks, ws, dropout_maps, noise_mode="const", return_stg1=False, noise_generator=None):
        out_stg1 = self.first_stage(images, masks, ws, dropout_maps[0], noise_mode=noise_mode,
                                    noise_generator=noise_generator)
        x = images * masks + out_stg1 * (1 - masks)
        x = torch.cat([masks - 0.5, x, images * masks], dim=1)
        feats = self.enc(x)
        fea_16 = feats[4]
        if tuple(dropout_maps[1].shape) != tuple(fea_16.shape):
            raise ValueError(f"second-stage dropout map {tuple(dropout_maps[1].shape)} != {tuple(fea_16.shape)}")
        m = dropout_maps[1].to(fea_16.dtype)
        add_n = self.to_square(ws[:, 0]).view(-1, 16, 16).unsqueeze(1)
        add_n = F.interpolate(add_n, size=fea_16.size()[-2:], mode="bilinear", align_corners=False)
        fea_16 = fea_16 * m + add_n * (1 - m)
        feats[4] = fea_16
        gs = self.to_style(fea_16)
        img = self.dec(fea_16, ws, gs, feats, noise_mode=noise_mode, noise_generator=noise_generator)
        img = img * (1 - masks) + images * masks
        return (img, out_stg1) if return_stg1 else img


class MappingNet(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, num_ws: int, num_layers: int = 8, activation: str = "lrelu",
                 lr_multiplier: float = 0.01) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        feats = [z_dim] + [w_dim] * num_layers
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(feats[i], feats[i + 1], activation=activation,
                                                        lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        x = normalize_2nd_moment(z.to(torch.float32))
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


class Generator(nn.Module):
    """MAT generator. `G(image, mask, z)`: image in [-1, 1] [N,3,H,W], mask [N,1,H,W] with 1 = known, 0 = hole."""

    def __init__(self, z_dim: int = 512, w_dim: int = 512, img_resolution: int = 512, img_channels: int = 3,
                 mapping_layers: int = 8) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = 0
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNet(w_dim, img_resolution, img_channels)
        self.mapping = MappingNet(z_dim, w_dim, self.synthesis.num_layers, num_layers=mapping_layers)

    def dropout_shapes(self, n: int, height: int, width: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes of the two dropout maps for an n x height x width input (both stages' 16x16 bottleneck at the
        trained resolution: tokens [n, h*w, 180] and features [n, 512, h, w] with h = height * 16 / resolution)."""
        f = self.img_resolution // 16
        h, w = height // f, width // f
        return (n, h * w, TOKEN_DIM), (n, channels_at(4), h, w)

    def draw_dropout_maps(self, n: int, height: int, width: int,
                          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Two {0,1} float32 maps, each entry 1 with probability 0.5 (what dropout(0.5) of 0.5s gives), on CPU."""
        s1, s2 = self.dropout_shapes(n, height, width)
        m1 = (torch.rand(s1, generator=generator) < 0.5).to(torch.float32)
        m2 = (torch.rand(s2, generator=generator) < 0.5).to(torch.float32)
        return m1, m2

    def forward(self, image: torch.Tensor, mask: torch.Tensor, z: torch.Tensor, c: torch.Tensor | None = None,
                truncation_psi: float = 1.0, noise: Noise = CONST_NOISE, return_stg1: bool = False,
                truncation_cutoff: int | None = None):
        noise_mode, noise_generator, dropout_maps = noise.mode, noise.generator, noise.dropout_maps
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        n, _, h, w = image.shape
        if dropout_maps is None:
            # Never the global RNG: a given generator, else a fixed seed (deterministic, but the same for every call).
            if isinstance(noise_generator, torch.Generator):
                g = noise_generator
            else:
                g = torch.Generator().manual_seed(0)
            dropout_maps = self.draw_dropout_maps(n, h, w, g)
        dropout_maps = (dropout_maps[0].to(image.device), dropout_maps[1].to(image.device))
        ws = self.mapping(z, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(image, mask, ws, dropout_maps, noise_mode=noise_mode, return_stg1=return_stg1,
                              noise_generator=noise_generator)


def build_generator(resolution: int = 512, mapping_layers: int = 8) -> Generator:
    """The MAT generator for `resolution` (512 or 256 as released) and mapping depth (8 released, 2 in the paper),
    in eval mode without gradients. Weights are random until a checkpoint is loaded."""
    if resolution not in (256, 512):
        raise ValueError(f"MAT resolution must be 256 or 512, got {resolution}")
    return Generator(img_resolution=resolution, mapping_layers=mapping_layers).eval().requires_grad_(False)
