"""``vgg16``: torch-fidelity's VGG16 fc2 features (4096-d, before ReLU) for precision/recall and density/coverage.

The weights are torchvision's ImageNet file, registered once as "torchvision-vgg16" by matbench.metrics.lpips
(LPIPS-vgg uses the same file); torch-fidelity loads it from our path.
"""

from __future__ import annotations

from pathlib import Path

import torch

from matbench.features.base import ExtractorSpec, FirstOutput, patched, seeded


def build_vgg16(path: Path | None) -> torch.nn.Module:
    """torch-fidelity's module (returns a tuple of feature layers); path None = seeded smoke weights."""
    import torch_fidelity.feature_extractor_vgg16 as tfv
    import torchvision

    if path is not None:
        return tfv.FeatureExtractorVGG16("vgg16", ["fc2"], feature_extractor_weights_path=str(path))

    def make() -> torch.nn.Module:
        with patched(tfv, "torchvision_load_pretrained_vgg16", lambda **k: torchvision.models.vgg16(weights=None)):
            return tfv.FeatureExtractorVGG16("vgg16", ["fc2"])

    return seeded(make)


def build(path: Path | None) -> torch.nn.Module:
    return FirstOutput(build_vgg16(path))


SPECS = (ExtractorSpec(
    name="vgg16", weights="torchvision-vgg16", dim=4096, input_size=224, native_resize="legacy-tf",
    input="uint8 0..255; resize to 224 and ImageNet normalisation inside the network, fc2 before ReLU",
    build=build, source="torch-fidelity FeatureExtractorVGG16 (torchvision weights)", uint8_input=True,
),)
