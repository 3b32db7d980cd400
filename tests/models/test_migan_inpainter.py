"""The `migan` Inpainter: registry, smoke weights, padding of smaller images, refusal of larger ones."""

from __future__ import annotations

import pytest
import torch

from matbench.errors import InputError, SpecError
from matbench.models.base import create_model, get_model_info


def test_registry_and_requirements():
    info = get_model_info("migan")
    assert info.requires.weights == ("migan-512-places2",) and not info.requires.samples


def test_smoke_padding_known_pixels_and_batch_independence():
    m = create_model("migan", smoke=True, resolution=256)
    assert m.smoke and m.provenance()["resolution"] == 256 and m.provenance()["smoke"] is True
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (2, 3, 200, 180), generator=g, dtype=torch.uint8)
    hole = torch.zeros(2, 1, 200, 180, dtype=torch.bool)
    hole[:, :, 50:150, 40:120] = True
    out = m(imgs, hole, ["a", "b"])
    assert out.shape == imgs.shape
    known = ~hole.expand_as(imgs)
    assert torch.equal(out[known], imgs[known])
    assert torch.equal(m(imgs[1:], hole[1:], ["b"]), out[1:])  # deterministic, batch-independent
    x = m.prepare(imgs[:1], hole[:1])
    assert x.shape == (1, 4, 256, 256)
    assert (x[:, 0, 200:, :] == 0.5).all() and (x[:, 0, :, 180:] == 0.5).all()  # padding is known
    assert torch.equal(x[0, 0, 50:150, 40:120], torch.full((100, 80), -0.5))  # hole: mask 0 - 0.5
    with pytest.raises(InputError, match="at most 256x256"):
        m(torch.zeros(1, 3, 300, 200, dtype=torch.uint8), torch.zeros(1, 1, 300, 200, dtype=torch.bool), ["c"])


def test_bad_options():
    with pytest.raises(SpecError, match="quantize"):
        create_model("migan", smoke=True, quantize="floor")
    with pytest.raises(SpecError, match="one of 256, 512"):
        create_model("migan", smoke=True, resolution=128)
    with pytest.raises(SpecError, match="fit"):
        create_model("migan", smoke=True, fit="crop")
