"""``inception-nvidia``: NVIDIA's TorchScript ``inception-2015-12-05.pt`` (what MAT's scripts use), called as
``detector(x_uint8, return_features=True)``. Its smoke twin is the torch-fidelity architecture (same role, same
2048-d output) with seeded random weights.

The file is loaded with ``torch.jit.load``, not unpickled as Python: a TorchScript archive holds TorchScript
programs and tensors, so loading it runs no Python code from the file, and calling it runs TorchScript operators
(docs/security.md). No full sha256 is published for it.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch

from matbench import weights as W
from matbench.errors import WeightsError
from matbench.features.base import ExtractorSpec, FirstOutput, jit_load
from matbench.features.inception_tf import build_tf_inception, spatial_output
from matbench.features.torchscript_archive import tensors as archive_tensors
from matbench.models.statecheck import check_state_dict

URL_NVIDIA_INCEPTION = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"

W.register_weights(W.WeightsFile(
    name="inception-nvidia",
    filename="inception-2015-12-05.pt",
    url=URL_NVIDIA_INCEPTION,
    used_by="FID, P-IDS/U-IDS, KID (NVIDIA TorchScript Inception, as MAT's evaluation scripts)",
))


def load_nvidia_inception(path: Path, device: str = "cpu") -> torch.jit.ScriptModule:
    try:
        return jit_load(path, map_location=device).eval()
    except Exception as e:
        raise WeightsError(f"{path}: cannot load as a TorchScript Inception ({type(e).__name__}: {e})") from None


class NvidiaInception(torch.nn.Module):
    """uint8 [N,3,H,W] -> 2048-d pool3 features of the TorchScript detector."""

    def __init__(self, detector: torch.nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.detector(x, return_features=True)


# ------------------------------------------------------------------ the same network as a native torch module
# TorchScript is deprecated (torch 2.14), so the detector also loads without it: its tensors are read from the
# archive (features.torchscript_archive: no TorchScript, no code from the file) into the module below. The module
# tree, tensor names and forward follow published transcriptions of the file's TorchScript code (docs/evaluation.md
# names them): `layers.{conv, conv_1, conv_2, pool0, conv_3, conv_4, pool1, mixed, mixed_1..mixed_10, pool2}`
# and `output` (2048 -> 1008); each conv layer holds `weight` (no bias) and a scale-free batch norm `beta`, `mean`,
# `var` (eps 0.001), then ReLU; the input is resized to 299 by affine_grid/grid_sample with TF1's corner
# convention, then (x - 128) / 128. Bit-equality with NVIDIA's real file is not verified here (no copy of it).

def _k(k: int | tuple[int, int]) -> tuple[int, int]:
    return (k, k) if isinstance(k, int) else k


class ConvLayer(torch.nn.Module):
    """conv (no bias) -> batch norm without scale (beta, mean, var; eps 0.001) -> ReLU."""

    def __init__(self, cin: int, cout: int, k: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(cout, cin, *_k(k)))
        self.beta = torch.nn.Parameter(torch.zeros(cout))
        self.register_buffer("mean", torch.zeros(cout))
        self.register_buffer("var", torch.ones(cout))
        self.stride, self.padding = stride, _k(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.conv2d(x, self.weight, None, self.stride, self.padding)
        x = torch.nn.functional.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.0, 0.001)
        return torch.relu(x)


def _seq(*named: tuple[str, torch.nn.Module]) -> torch.nn.Sequential:
    return torch.nn.Sequential(OrderedDict(named))


def _avg3() -> torch.nn.Module:  # TF's SAME average pool: the padding is not counted
    return torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False)


class BlockA(torch.nn.Module):
    def __init__(self, cin: int, pool: int) -> None:
        super().__init__()
        self.conv = ConvLayer(cin, 64, 1)
        self.tower = _seq(("conv", ConvLayer(cin, 48, 1)), ("conv_1", ConvLayer(48, 64, 5, padding=2)))
        self.tower_1 = _seq(("conv", ConvLayer(cin, 64, 1)), ("conv_1", ConvLayer(64, 96, 3, padding=1)),
                            ("conv_2", ConvLayer(96, 96, 3, padding=1)))
        self.tower_2 = _seq(("pool", _avg3()), ("conv", ConvLayer(cin, pool, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class BlockB(torch.nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.conv = ConvLayer(cin, 384, 3, stride=2)
        self.tower = _seq(("conv", ConvLayer(cin, 64, 1)), ("conv_1", ConvLayer(64, 96, 3, padding=1)),
                          ("conv_2", ConvLayer(96, 96, 3, stride=2)))
        self.pool = torch.nn.MaxPool2d(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.pool(x)], 1)


class BlockC(torch.nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.conv = ConvLayer(cin, 192, 1)
        self.tower = _seq(("conv", ConvLayer(cin, c7, 1)), ("conv_1", ConvLayer(c7, c7, (1, 7), padding=(0, 3))),
                          ("conv_2", ConvLayer(c7, 192, (7, 1), padding=(3, 0))))
        self.tower_1 = _seq(("conv", ConvLayer(cin, c7, 1)),
                            ("conv_1", ConvLayer(c7, c7, (7, 1), padding=(3, 0))),
                            ("conv_2", ConvLayer(c7, c7, (1, 7), padding=(0, 3))),
                            ("conv_3", ConvLayer(c7, c7, (7, 1), padding=(3, 0))),
                            ("conv_4", ConvLayer(c7, 192, (1, 7), padding=(0, 3))))
        self.tower_2 = _seq(("pool", _avg3()), ("conv", ConvLayer(cin, 192, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class BlockD(torch.nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.tower = _seq(("conv", ConvLayer(cin, 192, 1)), ("conv_1", ConvLayer(192, 320, 3, stride=2)))
        self.tower_1 = _seq(("conv", ConvLayer(cin, 192, 1)),
                            ("conv_1", ConvLayer(192, 192, (1, 7), padding=(0, 3))),
                            ("conv_2", ConvLayer(192, 192, (7, 1), padding=(3, 0))),
                            ("conv_3", ConvLayer(192, 192, 3, stride=2)))
        self.pool = torch.nn.MaxPool2d(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.tower(x), self.tower_1(x), self.pool(x)], 1)


class BlockE(torch.nn.Module):
    """mixed_9 pools by average, mixed_10 by maximum (as the TF graph: the known quirk of this network)."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.conv = ConvLayer(cin, 320, 1)
        self.tower_conv = ConvLayer(cin, 384, 1)
        self.tower_mixed_conv = ConvLayer(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = ConvLayer(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = ConvLayer(cin, 448, 1)
        self.tower_1_conv_1 = ConvLayer(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = ConvLayer(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = ConvLayer(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_pool = torch.nn.MaxPool2d(3, 1, 1) if max_pool else _avg3()
        self.tower_2_conv = ConvLayer(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
                          self.tower_2_conv(self.tower_2_pool(x))], 1)


class NativeNvidiaInception(torch.nn.Module):
    """NVIDIA's detector as a torch module: detector(uint8 [N,3,H,W], return_features=True) -> [N, 2048]."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = _seq(
            ("conv", ConvLayer(3, 32, 3, stride=2)), ("conv_1", ConvLayer(32, 32, 3)),
            ("conv_2", ConvLayer(32, 64, 3, padding=1)), ("pool0", torch.nn.MaxPool2d(3, 2)),
            ("conv_3", ConvLayer(64, 80, 1)), ("conv_4", ConvLayer(80, 192, 3)), ("pool1", torch.nn.MaxPool2d(3, 2)),
            ("mixed", BlockA(192, 32)), ("mixed_1", BlockA(256, 64)), ("mixed_2", BlockA(288, 64)),
            ("mixed_3", BlockB(288)), ("mixed_4", BlockC(768, 128)), ("mixed_5", BlockC(768, 160)),
            ("mixed_6", BlockC(768, 160)), ("mixed_7", BlockC(768, 192)), ("mixed_8", BlockD(768)),
            ("mixed_9", BlockE(1280, max_pool=False)), ("mixed_10", BlockE(2048, max_pool=True)),
            ("pool2", torch.nn.AvgPool2d(8, 8)))
        self.output = torch.nn.Linear(2048, 1008)

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        n, c, h, w = img.shape
        x = img.to(torch.float32)
        # TF1's bilinear resize (no half-pixel centres) through grid_sample: shift the grid by 1/in - 1/out
        theta = torch.eye(2, 3, dtype=torch.float32, device=x.device)
        theta[0, 2] += theta[0, 0] / w - theta[0, 0] / 299
        theta[1, 2] += theta[1, 1] / h - theta[1, 1] / 299
        grid = torch.nn.functional.affine_grid(theta.unsqueeze(0).repeat(n, 1, 1), [n, c, 299, 299], False)
        x = torch.nn.functional.grid_sample(x, grid, "bilinear", "border", False)
        features = self.layers((x - 128.0) / 128.0).reshape(-1, 2048)
        if return_features:
            return features
        return torch.softmax(self.output(features), 1)


def load_native(path: Path, device: str = "cpu") -> NativeNvidiaInception:
    """The detector of a TorchScript `inception-2015-12-05.pt` as a native module (no TorchScript, no code from
    the file runs); WeightsError naming the file if its tensors are not this network's."""
    sd = archive_tensors(path)
    m = NativeNvidiaInception()
    check_state_dict(sd, m.state_dict(), "NVIDIA Inception (inception-2015-12-05.pt)", str(path))
    m.load_state_dict(sd, strict=True)
    return m.to(device).eval()


def build(path: Path | None) -> torch.nn.Module:
    if path is None:
        return FirstOutput(build_tf_inception(None))
    # loaded on the CPU; get_extractor moves it to the device (as stylegan2-ada's metric_utils does)
    if not hasattr(torch.jit, "load"):  # a torch without TorchScript: the native module (see above)
        return NvidiaInception(load_native(path))
    return NvidiaInception(load_nvidia_inception(path))


SPECS = (ExtractorSpec(
    name="inception-nvidia", weights="inception-nvidia", dim=2048, input_size=299, native_resize="legacy-tf",
    input="uint8 0..255; TF1 bilinear resize to 299 and normalisation inside the TorchScript network, pool3",
    build=build, source="NVIDIA inception-2015-12-05.pt (TorchScript)", uint8_input=True,
    # found in the smoke twin (torch-fidelity's module); the TorchScript file takes no hooks and says so
    outputs=(spatial_output("module.Mixed_6d.branch1x1"),),
),)
