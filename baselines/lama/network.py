"""LaMa's FFC ResNet generator (Suvorov et al., WACV 2022), written for matbench.

Module and tensor names follow the official `FFCResNetGenerator` (advimman/lama,
saicinpainting/training/modules/ffc.py) so that the released `generator.*` tensors load
strictly. Only the parts the released models use are implemented: no LFU, no gating, no
spatial-transform wrapper, no output FFC, reflect padding, BatchNorm + ReLU.

Layout of `model` (Big LaMa: ngf 64, 3 downsamplings, 18 blocks, global ratio 0.75):
  0 ReflectionPad2d(3) | 1 FFC_BN_ACT k7 | 2..(1+n_down) strided FFC_BN_ACT (the last one
  opens the global branch) | n_blocks FFCResnetBlock | ConcatTupleLayer | n_down ×
  (ConvTranspose2d, BatchNorm2d, ReLU) | ReflectionPad2d(3) | Conv2d k7 | Sigmoid.

A feature map travels as a pair (local, global); `None` stands for an absent branch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

Pair = tuple[torch.Tensor, torch.Tensor | None]


@dataclass(frozen=True)
class LamaConfig:
    """The `generator:` section of a LaMa training config (kind ffc_resnet), resolved."""

    input_nc: int = 4
    output_nc: int = 3
    ngf: int = 64
    n_downsampling: int = 3
    n_blocks: int = 18
    max_features: int = 1024
    init_ratio_gin: float = 0.0
    init_ratio_gout: float = 0.0
    down_ratio_gin: float = 0.0
    down_ratio_gout: float = 0.0
    resnet_ratio_gin: float = 0.75
    resnet_ratio_gout: float = 0.75
    add_out_act: str | bool = "sigmoid"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


BIG_LAMA = LamaConfig()

# Keys of a `generator:` section we understand; anything else changes the architecture.
_KNOWN_GENERATOR_KEYS = {"kind", "input_nc", "output_nc", "ngf", "n_downsampling", "n_blocks", "max_features",
                         "add_out_act", "init_conv_kwargs", "downsample_conv_kwargs", "resnet_conv_kwargs"}
# Constructor options whose non-default values we do not implement (value = the default we do implement).
_DEFAULTS_ONLY = {"padding_type": "reflect", "out_ffc": False, "spatial_transform_layers": None,
                  "norm_layer": None, "activation_layer": None, "up_norm_layer": None, "up_activation": None}


def config_from_generator_section(section: dict[str, Any]) -> LamaConfig:
    """Build a LamaConfig from a resolved `generator:` mapping; ValueError names what is unsupported."""
    kind = section.get("kind", "ffc_resnet")
    if kind != "ffc_resnet":
        raise ValueError(f"generator.kind {kind!r} is not supported (only 'ffc_resnet')")
    for key, default in _DEFAULTS_ONLY.items():
        if key in section and section[key] != default:
            raise ValueError(f"generator.{key}={section[key]!r} is not supported")
    unknown = sorted(set(section) - _KNOWN_GENERATOR_KEYS - set(_DEFAULTS_ONLY))
    if unknown:
        raise ValueError(f"generator has unsupported keys: {', '.join(unknown)}")

    def ratios(name: str) -> tuple[float, float]:
        kw = dict(section.get(name) or {})
        if kw.pop("enable_lfu", False):
            raise ValueError(f"generator.{name}.enable_lfu=true is not supported")
        if kw.pop("gated", False):
            raise ValueError(f"generator.{name}.gated=true is not supported")
        gin, gout = float(kw.pop("ratio_gin", 0.0)), float(kw.pop("ratio_gout", 0.0))
        if kw:
            raise ValueError(f"generator.{name} has unsupported keys: {', '.join(sorted(kw))}")
        return gin, gout

    ii, io = ratios("init_conv_kwargs")
    di, do = ratios("downsample_conv_kwargs")
    ri, ro = ratios("resnet_conv_kwargs")
    d = LamaConfig()
    return LamaConfig(
        input_nc=int(section.get("input_nc", d.input_nc)), output_nc=int(section.get("output_nc", d.output_nc)),
        ngf=int(section.get("ngf", d.ngf)), n_downsampling=int(section.get("n_downsampling", d.n_downsampling)),
        n_blocks=int(section.get("n_blocks", d.n_blocks)),
        max_features=int(section.get("max_features", d.max_features)),
        init_ratio_gin=ii, init_ratio_gout=io, down_ratio_gin=di, down_ratio_gout=do,
        resnet_ratio_gin=ri, resnet_ratio_gout=ro, add_out_act=section.get("add_out_act", d.add_out_act),
    )


class FourierUnit(nn.Module):
    """1×1 conv + BN + ReLU in the 2-D real FFT domain (ortho norm), real/imag interleaved per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_layer = nn.Conv2d(2 * channels, 2 * channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(2 * channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        spec = torch.fft.rfftn(x, dim=(-2, -1), norm="ortho")  # n,c,h,w//2+1 complex
        # channel 2k = real part of channel k, 2k+1 = imaginary part
        z = torch.stack((spec.real, spec.imag), dim=2).reshape(n, 2 * c, h, spec.shape[-1])
        z = self.relu(self.bn(self.conv_layer(z)))
        z = z.reshape(n, c, 2, h, z.shape[-1])
        spec = torch.complex(z[:, :, 0].contiguous(), z[:, :, 1].contiguous())
        return torch.fft.irfftn(spec, s=(h, w), dim=(-2, -1), norm="ortho")


class SpectralTransform(nn.Module):
    """Global-to-global path: 1×1 reduce (BN, ReLU) → x + FourierUnit(x) → 1×1 expand."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        half = out_channels // 2
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, half, kernel_size=1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True)
        )
        self.fu = FourierUnit(half)
        self.conv2 = nn.Conv2d(half, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(x + self.fu(x))


@dataclass(frozen=True)
class ConvGeometry:
    """Stride, padding, dilation and padding mode of an FFC's spatial convolutions (nn.Conv2d's own arguments)."""

    stride: int = 1
    padding: int = 0
    dilation: int = 1
    padding_mode: str = "reflect"


PLAIN_GEOMETRY = ConvGeometry()


class FFC(nn.Module):
    """Fast Fourier convolution: four paths between a local and a global channel group."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float, ratio_gout: float,
                 geometry: ConvGeometry = PLAIN_GEOMETRY) -> None:
        super().__init__()
        stride, padding, dilation, padding_mode = (geometry.stride, geometry.padding, geometry.dilation,
                                                   geometry.padding_mode)
        in_g = int(in_channels * ratio_gin)
        out_g = int(out_channels * ratio_gout)
        in_l, out_l = in_channels - in_g, out_channels - out_g
        self.ratio_gout = ratio_gout

        def conv(cin: int, cout: int) -> nn.Conv2d | None:
            if cin == 0 or cout == 0:
                return None
            return nn.Conv2d(cin, cout, kernel_size, stride, padding, dilation, bias=False, padding_mode=padding_mode)

        self.convl2l = conv(in_l, out_l)
        self.convl2g = conv(in_l, out_g)
        self.convg2l = conv(in_g, out_l)
        if stride != 1 and in_g and out_g:
            raise ValueError("strided spectral transform is not implemented")
        self.convg2g = SpectralTransform(in_g, out_g) if in_g and out_g else None

    @staticmethod
    def _sum(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
        if a is None:
            return b
        return a if b is None else a + b

    def forward(self, x: Pair) -> Pair:
        x_l, x_g = x
        out_l = out_g = None
        if self.ratio_gout != 1:
            out_l = self._sum(self.convl2l(x_l) if self.convl2l is not None else None,
                              self.convg2l(x_g) if self.convg2l is not None and x_g is not None else None)
        if self.ratio_gout != 0:
            out_g = self._sum(self.convl2g(x_l) if self.convl2g is not None else None,
                              self.convg2g(x_g) if self.convg2g is not None and x_g is not None else None)
        return out_l, out_g  # type: ignore[return-value]


class FFC_BN_ACT(nn.Module):  # noqa: N801  (official class name)
    """FFC, then BatchNorm and ReLU on each branch that exists."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float, ratio_gout: float,
                 geometry: ConvGeometry = PLAIN_GEOMETRY) -> None:
        super().__init__()
        self.ffc = FFC(in_channels, out_channels, kernel_size, ratio_gin, ratio_gout, geometry)
        out_g = int(out_channels * ratio_gout)
        self.bn_l = nn.BatchNorm2d(out_channels - out_g) if ratio_gout != 1 else None
        self.bn_g = nn.BatchNorm2d(out_g) if ratio_gout != 0 else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Pair) -> Pair:
        x_l, x_g = self.ffc(x)
        if self.bn_l is not None and x_l is not None:
            x_l = self.act(self.bn_l(x_l))
        if self.bn_g is not None and x_g is not None:
            x_g = self.act(self.bn_g(x_g))
        return x_l, x_g


class FFCResnetBlock(nn.Module):
    """Two 3×3 FFC_BN_ACT layers with a residual connection on both branches (no activation after)."""

    def __init__(self, dim: int, ratio_gin: float, ratio_gout: float) -> None:
        super().__init__()
        self.conv1 = FFC_BN_ACT(dim, dim, 3, ratio_gin, ratio_gout, ConvGeometry(padding=1))
        self.conv2 = FFC_BN_ACT(dim, dim, 3, ratio_gin, ratio_gout, ConvGeometry(padding=1))

    def forward(self, x: Pair) -> Pair:
        x_l, x_g = x
        y_l, y_g = self.conv2(self.conv1((x_l, x_g)))
        x_l = x_l + y_l
        x_g = y_g if x_g is None else (x_g if y_g is None else x_g + y_g)
        return x_l, x_g


class ConcatTupleLayer(nn.Module):
    def forward(self, x: Pair) -> torch.Tensor:
        x_l, x_g = x
        if x_g is None:
            return x_l
        if x_l is None:
            return x_g
        return torch.cat([x_l, x_g], dim=1)


class _ToPair(nn.Module):
    """Not in the official net (it passes a bare tensor): wraps the padded input as (x, None)."""

    def forward(self, x: torch.Tensor) -> Pair:
        return x, None


class FFCResNetGenerator(nn.Module):
    """LaMa generator; input [N, input_nc, H, W] with H, W multiples of 2**n_downsampling."""

    def __init__(self, cfg: LamaConfig = BIG_LAMA) -> None:
        super().__init__()
        self.config = cfg
        ngf, mf = cfg.ngf, cfg.max_features
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            FFC_BN_ACT(cfg.input_nc, ngf, 7, cfg.init_ratio_gin, cfg.init_ratio_gout),
        ]
        for i in range(cfg.n_downsampling):
            gout = cfg.resnet_ratio_gin if i == cfg.n_downsampling - 1 else cfg.down_ratio_gout
            layers.append(FFC_BN_ACT(min(mf, ngf * 2**i), min(mf, ngf * 2 ** (i + 1)), 3, cfg.down_ratio_gin, gout,
                                     ConvGeometry(stride=2, padding=1)))
        dim = min(mf, ngf * 2**cfg.n_downsampling)
        layers += [FFCResnetBlock(dim, cfg.resnet_ratio_gin, cfg.resnet_ratio_gout) for _ in range(cfg.n_blocks)]
        layers.append(ConcatTupleLayer())
        up_act = nn.ReLU(inplace=True)  # one shared instance, as in the official net
        for i in range(cfg.n_downsampling):
            mult = 2 ** (cfg.n_downsampling - i)
            cin, cout = min(mf, ngf * mult), min(mf, ngf * mult // 2)
            layers += [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
                       nn.BatchNorm2d(cout), up_act]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cfg.output_nc, kernel_size=7)]
        if cfg.add_out_act in ("sigmoid", True):
            layers.append(nn.Sigmoid())
        elif cfg.add_out_act == "tanh":
            layers.append(nn.Tanh())
        elif cfg.add_out_act not in (False, None, "none"):
            raise ValueError(f"generator.add_out_act={cfg.add_out_act!r} is not supported")
        self.model = nn.Sequential(*layers)
        self._to_pair = _ToPair()

    @property
    def multiple(self) -> int:
        return 2**self.config.n_downsampling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(f"LaMa input H, W must be multiples of {m}, got {tuple(x.shape[-2:])}")
        h = self.model[0](x)
        h = self.model[1](self._to_pair(h))
        for layer in self.model[2:]:
            h = layer(h)
        return h


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
