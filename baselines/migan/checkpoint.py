"""Reading released MI-GAN generator files (migan_256_places2.pt, migan_512_places2.pt, migan_256_ffhq.pt).

The released `.pt` files are plain state dicts of the inference generator (`torch.save(model.state_dict())`
in the official export script), so they load with `torch.load(weights_only=True)`: no code runs.
A `.safetensors` copy with the same names also works.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from matbench.errors import WeightsError
from matbench.models.statecheck import check_state_dict, read_plain_state_dict

from .network import MIGANGenerator


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    return read_plain_state_dict(path, "MI-GAN state_dict",
                                 "expected migan_*.pt from the official release (not the traced or ONNX export)")


def infer_resolution(sd: Mapping[str, torch.Tensor], source: str = "MI-GAN weights") -> int:
    res = [int(m.group(1)) for k in sd if (m := re.match(r"synthesis\.b(\d+)\.", k))]
    if not res:
        raise WeightsError(f"{source}: no 'synthesis.b<res>.*' tensors: not an MI-GAN generator state_dict")
    return max(res)


def load_into(model: MIGANGenerator, sd: Mapping[str, torch.Tensor], source: str) -> None:
    """Strict: every name, every shape; the fixed [1,3,3,1] filters and upsampling masks as the port builds them."""
    expected = model.state_dict()
    check_state_dict(sd, expected, f"the MI-GAN {model.resolution} generator", source)
    for k, v in expected.items():
        if (k.endswith("filter.weight") or k.endswith("filter_const")) and not torch.allclose(
                sd[k].float(), v, rtol=0, atol=1e-6):
            raise WeightsError(f"{source}: fixed filter {k} differs from the [1,3,3,1] filter this port expects")
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)


def load_generator(path: str | Path) -> MIGANGenerator:
    sd = read_state_dict(path)
    model = MIGANGenerator(infer_resolution(sd, str(path)))
    load_into(model, sd, str(path))
    return model.eval().requires_grad_(False)


def smoke_generator(resolution: int = 512, seed: int = 0) -> MIGANGenerator:
    """Random weights (PyTorch default init from `seed`, seeded noise maps); the global RNG is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MIGANGenerator(resolution)
        for name, buf in model.named_buffers():
            if name.endswith("noise_const"):
                buf.copy_(torch.randn(buf.shape))
    return model.eval().requires_grad_(False)
