"""MAT inpainter adapter: batch invariance on uint8 outputs, pluralistic samples, padding/cropping, known pixels,
options, weights registry entries and loading by path (smoke weights at 256)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matbench import weights as wreg
from matbench.errors import SpecError, WeightsError
from matbench.models.base import create_model, get_model_info
from matbench.models.mat.inpainter import RELEASED, reflect_pad, smoke_generator


@pytest.fixture(scope="module")
def smoke256():
    return create_model("mat", smoke=True, resolution=256)


def _batch():
    g = torch.Generator().manual_seed(3)
    # smooth-ish images (low-res noise upsampled) so the model sees structure; 200x240 pads to 256x256
    small = torch.randint(0, 256, (3, 3, 25, 30), dtype=torch.uint8, generator=g).float()
    imgs = torch.nn.functional.interpolate(small, size=(200, 240), mode="bilinear").round().to(torch.uint8)
    hole = torch.zeros(3, 1, 200, 240, dtype=torch.bool)
    hole[0, :, 40:160, 30:200] = True
    hole[1, :, 0:120, 100:240] = True
    hole[2, :, 90:200, 0:90] = True
    return imgs, hole, ["img/a", "img/b", "img/c"]


@pytest.fixture(scope="module")
def outputs(smoke256):
    imgs, hole, ids = _batch()
    rng = torch.get_rng_state()
    out3 = smoke256(imgs, hole, ids, seed=7)
    out1 = smoke256(imgs[1:2], hole[1:2], ids[1:2], seed=7)
    s1 = smoke256(imgs[1:2], hole[1:2], ids[1:2], seed=7, sample=1)
    return {"imgs": imgs, "hole": hole, "out3": out3, "out1": out1, "s1": s1,
            "rng_untouched": torch.equal(rng, torch.get_rng_state())}


def test_batch_of_one_equals_batch_of_three(outputs):
    assert outputs["out3"].dtype == torch.uint8 and outputs["out3"].shape == outputs["imgs"].shape
    assert torch.equal(outputs["out3"][1:2], outputs["out1"])
    assert outputs["rng_untouched"]


def test_known_pixels_kept_and_holes_filled(outputs):
    imgs, hole, out = outputs["imgs"], outputs["hole"], outputs["out3"]
    known = ~hole.expand_as(imgs)
    assert torch.equal(out[known], imgs[known])
    filled = out[~known].float()
    assert (filled != imgs[~known].float()).float().mean() > 0.5
    assert 5 < filled.std() and 0 < filled.mean() < 255  # smoke weights give in-range, non-constant fills


def test_samples_differ(outputs):
    h = outputs["hole"][1:2].expand(1, 3, 200, 240)
    a, b = outputs["out1"], outputs["s1"]
    assert torch.equal(a[~h], b[~h])
    assert (a[h] != b[h]).float().mean() > 0.2


def test_per_image_randomness_comes_from_id(smoke256):
    z_a, z_b = smoke256.latent(0, "x", 0), smoke256.latent(0, "y", 0)
    assert not torch.equal(z_a, z_b) and torch.equal(z_a, smoke256.latent(0, "x", 0))
    m1, m2 = smoke256.dropout_maps(0, "x", 0, 256, 512)
    assert m1.shape == (1, 16 * 32, 180) and m2.shape == (1, 512, 16, 32)
    assert set(m1.unique().tolist()) == {0.0, 1.0} and 0.45 < m1.mean() < 0.55


def test_noise_mode_none_runs():
    m = create_model("mat", smoke=True, resolution=256, noise_mode="none")
    img = torch.full((1, 3, 64, 64), 100, dtype=torch.uint8)
    hole = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    hole[..., 16:48, 16:48] = True
    out = m(img, hole, ["one"])
    assert out.shape == img.shape and torch.equal(out[~hole.expand_as(out)], img[~hole.expand_as(img)])


def test_reflect_pad_matches_numpy_for_large_pads():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    y = reflect_pad(x, 7, 9)
    ref = np.pad(x.numpy(), ((0, 0), (0, 0), (0, 7), (0, 9)), mode="reflect")
    np.testing.assert_array_equal(y.numpy(), ref)


def test_options_validated():
    with pytest.raises(SpecError):
        create_model("mat", smoke=True, resolution=128)
    with pytest.raises(SpecError):
        create_model("mat", smoke=True, resolution=256, precision="fp16")
    with pytest.raises(SpecError):
        create_model("mat", smoke=True, resolution=256, noise_mode="loud")


def test_registry_entries():
    info = get_model_info("mat")
    assert info.requires.size_multiple == 512 and info.requires.samples and info.requires.native_resolution == 512
    expected = {"mat-places512-fulldata": ("Places_512_FullData.pkl", 512), "mat-places512": ("Places_512.pkl", 512),
                "mat-celebahq512": ("CelebA-HQ_512.pkl", 512), "mat-celebahq256": ("CelebA-HQ_256.pkl", 256),
                "mat-ffhq512": ("FFHQ_512.pkl", 512)}
    assert set(RELEASED) == set(expected)
    for name, (fn, res) in expected.items():
        e = wreg.get(name)
        assert (e.filename, e.extra["resolution"], e.extra["mapping_layers"]) == (fn, res, 8)
        assert e.url is None and e.sha256 is None and "sharepoint.com" in e.manual


def test_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.setenv("MATBENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(wreg, "hub_checkpoints_dir", lambda: tmp_path / "hub")
    with pytest.raises(WeightsError) as e:
        create_model("mat", weights="mat-celebahq256")
    msg = str(e.value)
    assert "CelebA-HQ_256.pkl" in msg and "sharepoint.com" in msg
    assert "--smoke" in e.value.for_options({"--smoke"})  # the hint, where the command has --smoke


def test_weights_by_path(tmp_path):
    from safetensors.torch import save_file

    G = smoke_generator(256, seed=5)
    p = tmp_path / "mat256.safetensors"
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(p))
    m = create_model("mat", weights=str(p))
    assert m.resolution == 256 and not m.smoke
    assert m.provenance()["weights"]["sha256"] and m.provenance()["weights"]["path"] == str(p)
    ref = G.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in m.G.state_dict().items())
