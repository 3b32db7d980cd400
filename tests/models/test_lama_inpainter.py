"""LaMa adapter: registry entry, weights lookup, uint8 conversion, padding, Inpainter contract (smoke weights)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from matbench.baselines.lama.inpainter import LamaInpainter, pad_to_modulo, symmetric_pad_index, to_uint8
from matbench.baselines.lama.network import FFCResNetGenerator, LamaConfig

from matbench import weights
from matbench.errors import SpecError, WeightsError
from matbench.models.base import Requirements, create_model, get_model_info

TINY = LamaConfig(ngf=8, n_downsampling=3, n_blocks=1)
TINY_YAML = """\
generator:
  kind: ffc_resnet
  ngf: 8
  n_downsampling: 3
  n_blocks: 1
  resnet_conv_kwargs: {ratio_gin: 0.75, ratio_gout: 0.75, enable_lfu: false}
"""


@pytest.fixture(scope="module")
def smoke():
    return create_model("lama", smoke=True)


def _batch(n=2, h=37, w=45, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)
    hole = torch.zeros(n, 1, h, w, dtype=torch.bool)
    hole[:, :, h // 4: 3 * h // 4, w // 5: w // 2] = True
    return images, hole


def test_registry_entry():
    info = get_model_info("lama")
    assert info.requires == Requirements(weights=("big-lama",), size_multiple=8, samples=False, native_resolution=256)
    w = weights.get("big-lama")
    assert w.filename == "big-lama.zip" and w.url.endswith("/big-lama.zip") and w.sha256 is None
    assert "unzip" in w.manual


def test_smoke_model_contract(smoke):
    assert isinstance(smoke, LamaInpainter) and smoke.smoke and smoke.rounding == "official"
    assert smoke.provenance()["smoke"] is True and "smoke" in smoke.provenance()["weights"]
    images, hole = _batch()
    out = smoke(images, hole, ["a", "b"])
    assert out.dtype == torch.uint8 and out.shape == images.shape
    h3 = hole.expand_as(out)
    assert torch.equal(out[~h3], images[~h3])
    filled = out[h3].float()
    assert filled.std() > 5 and (filled == 0).float().mean() < 0.5 and (filled == 255).float().mean() < 0.5
    assert torch.equal(smoke(images, hole, ["a", "b"]), out)  # deterministic
    single = smoke(images[1:], hole[1:], ["b"])  # no dependence on the batch (BN in eval mode)
    assert (single.int() - out[1:].int()).abs().max() <= 1


def test_smoke_weights_are_deterministic(smoke):
    again = create_model("lama", smoke=True, rounding="round")
    a, b = smoke.generator.state_dict(), again.generator.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rv = torch.cat([v for k, v in a.items() if k.endswith("running_var")])
    assert rv.min() > 0 and rv.max() < 1e6  # calibrated, not the 0/1 defaults
    assert not all(torch.equal(v, torch.zeros_like(v)) for k, v in a.items() if k.endswith("running_mean"))


def test_to_uint8_truncates_like_numpy():
    x = torch.tensor([0.0, 0.2, 127.5 / 255, 0.99999, 1.0, 1.3, -0.2, 254.9 / 255])
    ref = np.clip(x.numpy() * 255, 0, 255).astype("uint8")  # bin/predict.py
    assert to_uint8(x).tolist() == ref.tolist() == [0, 51, 127, 254, 255, 255, 0, 254]
    assert to_uint8(x, "round").tolist() == [0, 51, 128, 255, 255, 255, 0, 255]
    r = torch.rand(10000, generator=torch.Generator().manual_seed(1)) * 1.2 - 0.1
    assert np.array_equal(to_uint8(r).numpy(), np.clip(r.numpy() * 255, 0, 255).astype("uint8"))
    with pytest.raises(ValueError):
        to_uint8(x, "floor")


@pytest.mark.parametrize("h,w", [(5, 3), (2, 2), (8, 16), (373, 500), (1, 9)])
def test_padding_equals_numpy_symmetric(h, w):
    a = np.random.default_rng(h * 1000 + w).random((1, 2, h, w)).astype(np.float32)
    ref = np.pad(a, ((0, 0), (0, 0), (0, (-h) % 8), (0, (-w) % 8)), mode="symmetric")
    assert np.array_equal(pad_to_modulo(torch.from_numpy(a)).numpy(), ref)
    assert symmetric_pad_index(3, 4).tolist() == [0, 1, 2, 2, 1, 0, 0]


def test_rounding_option_changes_only_boundary_values():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        gen = FFCResNetGenerator(TINY).eval()
    images, hole = _batch(1, 16, 24)
    off = LamaInpainter(gen)(images, hole, ["x"])
    rnd = LamaInpainter(gen, rounding="round")(images, hole, ["x"])
    d = rnd.int() - off.int()
    assert d.min() >= 0 and d.max() <= 1 and d.sum() > 0


def test_bad_options():
    with pytest.raises(SpecError, match="rounding"):
        create_model("lama", smoke=True, rounding="nearest")
    with pytest.raises(SpecError, match="not both"):
        create_model("lama", smoke=True, weights="/x")
    with pytest.raises(SpecError, match="model 'lama' has no option 'colour'"):
        create_model("lama", smoke=True, colour="red")


def test_missing_weights_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MATBENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("MATBENCH_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    with pytest.raises(WeightsError, match=r"big-lama\.zip.*huggingface") as e:
        create_model("lama")
    assert str(tmp_path) in str(e.value)
    with pytest.raises(WeightsError, match="not found"):
        create_model("lama", weights=tmp_path / "nope")


def _write_tiny_folder(folder, model):
    (folder / "models").mkdir(parents=True)
    (folder / "config.yaml").write_text(TINY_YAML)
    sd = OrderedDict({"generator." + k: v for k, v in model.state_dict().items()})
    torch.save({"epoch": 4, "global_step": 10, "state_dict": sd}, folder / "models" / "best.ckpt")


def test_released_layout_loads_by_path_and_from_weights_dir(tmp_path, monkeypatch):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        ref = FFCResNetGenerator(TINY).eval()
    _write_tiny_folder(tmp_path / "w" / "big-lama", ref)
    images, hole = _batch(1, 20, 30)
    expected = LamaInpainter(ref)(images, hole, ["i"])

    m = create_model("lama", weights=tmp_path / "w" / "big-lama")
    assert not m.smoke and m.generator.config == TINY
    assert torch.equal(m(images, hole, ["i"]), expected)
    prov = m.provenance()["weights"]
    assert prov["epoch"] == 4 and len(prov["sha256"]) == 64 and prov["matches_reported_best_ckpt"] is False

    monkeypatch.setenv("MATBENCH_WEIGHTS", str(tmp_path / "w"))  # registry lookup finds the unpacked folder
    m2 = create_model("lama")
    assert torch.equal(m2(images, hole, ["i"]), expected)
