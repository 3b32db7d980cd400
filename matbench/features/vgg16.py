"""``vgg16``: torch-fidelity's VGG16 fc2 features (4096-d, before ReLU) for precision/recall and density/coverage.

The weights are torchvision's ImageNet file, registered once as "torchvision-vgg16" by matbench.metrics.lpips
(LPIPS-vgg uses the same file); it is read here weights-only and handed to torch-fidelity as a built module.
"""

from __future__ import annotations

from pathlib import Path

import torch

from matbench.features.base import BUILD_LOCK, ExtractorSpec, FirstOutput, patched, seeded
from matbench.models.statecheck import check_state_dict, read_plain_state_dict


def build_vgg16(path: Path | None) -> torch.nn.Module:
    """torch-fidelity's module (returns a tuple of feature layers); path None = seeded smoke weights.

    torch-fidelity would read a weights path with ``torch.load(weights_only=False)`` (which runs any code a
    pickle carries), so it never sees the path: its torchvision VGG16 is handed over already filled with our
    tensors, read weights-only (or from .safetensors) and loaded strictly."""
    import torch_fidelity.feature_extractor_vgg16 as tfv
    import torchvision

    if path is None:
        return seeded(lambda: _with_vgg(tfv, torchvision.models.vgg16(weights=None)))
    sd = read_plain_state_dict(path, "torchvision VGG16 state dict")  # weights-only: no code from the file runs
    vgg = torchvision.models.vgg16(weights=None)  # what torch-fidelity builds before loading a path
    check_state_dict(sd, vgg.state_dict(), "torchvision VGG16", str(path))
    vgg.load_state_dict(sd, strict=True)
    return _with_vgg(tfv, vgg)


def _with_vgg(tfv, vgg: torch.nn.Module) -> torch.nn.Module:
    """torch-fidelity's extractor around `vgg` (its own pretrained loader is given this module instead)."""
    # the patched loader is process-wide: one build at a time
    with BUILD_LOCK, patched(tfv, "torchvision_load_pretrained_vgg16", lambda **k: vgg):
        return tfv.FeatureExtractorVGG16("vgg16", ["fc2"])


def build(path: Path | None) -> torch.nn.Module:
    return FirstOutput(build_vgg16(path))


SPECS = (ExtractorSpec(
    name="vgg16", weights="torchvision-vgg16", dim=4096, input_size=224, native_resize="legacy-tf",
    input="uint8 0..255; resize to 224 and ImageNet normalisation inside the network, fc2 before ReLU",
    build=build, source="torch-fidelity FeatureExtractorVGG16 (torchvision weights)", uint8_input=True,
),)
