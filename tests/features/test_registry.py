"""The one extractor registry: every extractor listed once with its dimension and weights entry, and a smoke
build of each gives features of the recorded dimension (skipped where its optional package is missing)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from matbench import features as F
from matbench import weights as W

EXPECTED = {
    "inception-v3-compat": (2048, "inception-v3-compat"), "inception-nvidia": (2048, "inception-nvidia"),
    "vgg16": (4096, "torchvision-vgg16"), "pt-inception": (2048, "pt-inception"),
    "dinov2-vits14": (384, "dinov2-vits14"), "dinov2-vitb14": (768, "dinov2-vitb14"),
    "dinov2-vitl14": (1024, "dinov2-vitl14"), "dinov2-vitg14": (1536, "dinov2-vitg14"),
    "clip-vitl14-336": (768, "clip-vitl14-336"), "clip-vitb32": (512, "clip-vitb32"),
}
# optional package each family needs (the `protocols` extra); the others need torch-fidelity only
NEEDS = {"pt-inception": "pytorch_fid", "dinov2": "timm"}
# the big ViTs cost minutes on a 2-core machine: their smaller siblings cover the same code
SLOW = {"dinov2-vitl14", "dinov2-vitg14", "clip-vitl14-336"}


def test_registry_lists_every_extractor_once_with_dim_and_weights():
    names = F.names()
    assert len(names) == len(set(names)) and set(names) == set(EXPECTED)
    for name, (dim, weights) in EXPECTED.items():
        spec = F.get_spec(name)
        assert spec.name == name and spec.dim == dim and spec.weights == weights
        assert W.get(spec.weights).filename


def test_registering_a_different_spec_under_a_taken_name_is_refused():
    import dataclasses

    spec = F.get_spec("vgg16")
    assert F.register_extractor(spec) is spec
    with pytest.raises(ValueError, match="already registered differently"):
        F.register_extractor(dataclasses.replace(spec, dim=1))


@pytest.mark.parametrize("name", [n for n in EXPECTED if n not in SLOW]
                         + [pytest.param(n, marks=pytest.mark.slow) for n in sorted(SLOW)])
def test_smoke_build_has_the_recorded_dim(name):
    need = NEEDS.get(name) or NEEDS.get(name.split("-")[0])
    if need and importlib.util.find_spec(need) is None:
        pytest.skip(f"{need} not installed")
    ex = F.get_extractor(name, smoke=True)
    x = torch.randint(0, 256, (1, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    assert ex.dim == F.get_spec(name).dim and ex(x).shape == (1, ex.dim) and ex.smoke


def test_uint8_input_extractors_refuse_another_resize():
    from matbench.errors import InputError

    with pytest.raises(InputError, match="resizes inside its network"):
        F.get_extractor("vgg16", smoke=True, resize_convention="clean")
