"""``inception-nvidia``: NVIDIA's TorchScript ``inception-2015-12-05.pt`` (what MAT's scripts use), called as
``detector(x_uint8, return_features=True)``. Its smoke twin is the torch-fidelity architecture (same role, same
2048-d output) with seeded random weights.

The file is loaded with ``torch.jit.load``, not unpickled as Python: a TorchScript archive holds TorchScript
programs and tensors, so loading it runs no Python code from the file, and calling it runs TorchScript operators
(docs/security.md). No full sha256 is published for it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from matbench import weights as W
from matbench.errors import WeightsError
from matbench.features.base import ExtractorSpec, FirstOutput
from matbench.features.inception_tf import build_tf_inception, spatial_output

URL_NVIDIA_INCEPTION = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"

W.register_weights(W.WeightsFile(
    name="inception-nvidia",
    filename="inception-2015-12-05.pt",
    url=URL_NVIDIA_INCEPTION,
    used_by="FID, P-IDS/U-IDS, KID (NVIDIA TorchScript Inception, as MAT's evaluation scripts)",
))


def load_nvidia_inception(path: Path, device: str = "cpu") -> torch.jit.ScriptModule:
    try:
        return torch.jit.load(str(path), map_location=device).eval()
    except Exception as e:
        raise WeightsError(f"{path}: cannot load as a TorchScript Inception ({type(e).__name__}: {e})") from None


class NvidiaInception(torch.nn.Module):
    """uint8 [N,3,H,W] -> 2048-d pool3 features of the TorchScript detector."""

    def __init__(self, detector: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.detector(x, return_features=True)


def build(path: Path | None) -> torch.nn.Module:
    if path is None:
        return FirstOutput(build_tf_inception(None))
    # loaded on the CPU; get_extractor moves it to the device (as stylegan2-ada's metric_utils does)
    return NvidiaInception(load_nvidia_inception(path))


SPECS = (ExtractorSpec(
    name="inception-nvidia", weights="inception-nvidia", dim=2048, input_size=299, native_resize="legacy-tf",
    input="uint8 0..255; TF1 bilinear resize to 299 and normalisation inside the TorchScript network, pool3",
    build=build, source="NVIDIA inception-2015-12-05.pt (TorchScript)", uint8_input=True,
    # found in the smoke twin (torch-fidelity's module); the TorchScript file takes no hooks and says so
    outputs=(spatial_output("module.Mixed_6d.branch1x1"),),
),)
