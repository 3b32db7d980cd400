"""CoModGAN adapter: contract, seeding, dropout modes, quantisation, strict loading, weights entries.

Uses small generators (resolution 16, same architecture rules) so the file runs in seconds; the 512
network itself is checked against the port in test_comodgan_golden.py.
"""

from __future__ import annotations

import pickle

import pytest
import torch
from matbench.baselines.comodgan.inpainter import (
    CoModGANInpainter,
    load_generator,
    read_state_dict,
    smoke_generator,
)

from matbench import seeding
from matbench import weights as wreg
from matbench.errors import InputError, SpecError, WeightsError
from matbench.models import create_model, get_model_info

RES = 16


@pytest.fixture(scope="module")
def gen():
    return smoke_generator(RES, fmap_max=32)  # narrow: same structure, fast


def _batch(n: int, h: int = RES, w: int = RES, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)
    hole = torch.zeros(n, 1, h, w, dtype=torch.bool)
    hole[:, :, 3:12, 2:10] = True
    return images, hole


def _by_hand(gen, image: torch.Tensor, hole: torch.Tensor, image_id: str, seed: int, sample: int,
             dropout: bool) -> torch.Tensor:
    """The documented pipeline written out: [-1,1] image, mask 1 = known, seeded z/noise/keep, round."""
    x = image[None].float() * (2 / 255) - 1
    m = (~hole[None]).float()
    z = seeding.randn((1, gen.latent_dim), seed, image_id, "comodgan", "z", sample)
    noise = [seeding.randn(s, seed, image_id, "comodgan", "noise", i, sample) for i, s in enumerate(gen.noise_shapes)]
    keep = None
    if dropout:
        g = seeding.generator(seed, image_id, "comodgan", "dropout", sample)
        keep = (torch.rand((1, gen.global_dim), generator=g) >= 0.5).float()
    with torch.no_grad():
        y = gen(x, m, z, noise=noise, dropout_keep=keep).composited
    return torch.floor(y * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0]


@pytest.mark.parametrize("dropout", ["official", "off"])
def test_adapter_equals_documented_pipeline(gen, dropout: str) -> None:
    images, hole = _batch(2)
    model = CoModGANInpainter(gen, dropout=dropout)
    out = model(images, hole, ["a", "b"], seed=7, sample=1)
    for i, image_id in enumerate(["a", "b"]):
        assert torch.equal(out[i], _by_hand(gen, images[i], hole[i], image_id, 7, 1, dropout == "official"))
    assert torch.equal(out[~hole.expand_as(out)], images[~hole.expand_as(images)])


def test_batch_of_one_equals_batch_of_three_in_any_order(gen) -> None:
    images, hole = _batch(3)
    model = CoModGANInpainter(gen)
    ids = ["x/1", "x/2", "x/3"]
    full = model(images, hole, ids, seed=5)
    singles = torch.cat([model(images[i:i + 1], hole[i:i + 1], [ids[i]], seed=5) for i in range(3)])
    assert torch.equal(full, singles)
    perm = [2, 0, 1]
    shuffled = model(images[perm], hole[perm], [ids[i] for i in perm], seed=5)
    assert torch.equal(shuffled, full[perm])


def test_randomness_follows_seed_sample_and_id(gen) -> None:
    images, hole = _batch(1)
    model = CoModGANInpainter(gen)
    a = model(images, hole, ["img"], seed=0, sample=0)
    assert torch.equal(a, model(images, hole, ["img"], seed=0, sample=0))
    assert not torch.equal(a, model(images, hole, ["img"], seed=1, sample=0))
    assert not torch.equal(a, model(images, hole, ["img"], seed=0, sample=1))
    assert not torch.equal(a, model(images, hole, ["other"], seed=0, sample=0))
    # the global RNG is neither used nor disturbed
    state = torch.get_rng_state()
    model(images, hole, ["img"])
    assert torch.equal(state, torch.get_rng_state())


def test_dropout_modes_differ_and_are_recorded(gen) -> None:
    images, hole = _batch(1)
    on, off = CoModGANInpainter(gen, dropout="official"), CoModGANInpainter(gen, dropout="off")
    assert not torch.equal(on(images, hole, ["i"]), off(images, hole, ["i"]))
    assert on.provenance()["dropout"] == "official" and off.provenance()["dropout"] == "off"
    _, _, keep = on.random_inputs("i", 0, 0)
    assert keep.shape == (1, gen.global_dim) and set(keep.unique().tolist()) == {0.0, 1.0}
    assert off.random_inputs("i", 0, 0)[2] is None
    with pytest.raises(SpecError, match="dropout"):
        CoModGANInpainter(gen, dropout="on")


def test_quantisation_official_round_and_trunc(gen) -> None:
    y = torch.tensor([-2.0, -1.0, 0.0, 0.999, 1.0, 2.0, -0.9961])
    # round: floor(y*127.5 + 128): -1 -> 0, 0 -> 128, 0.999 -> 255, 1 -> 255 (255.5 floored), -0.9961 -> 0
    assert CoModGANInpainter(gen)._to_uint8(y).tolist() == [0, 0, 128, 255, 255, 255, 0]
    # trunc: (y+1)*127.5 clipped, truncated: 0 -> 127, 0.999 -> 254
    assert CoModGANInpainter(gen, quantize="trunc")._to_uint8(y).tolist() == [0, 0, 127, 254, 255, 255, 0]


def test_smaller_images_are_padded_larger_refused(gen) -> None:
    model = CoModGANInpainter(gen)
    images, hole = _batch(1, 12, 10)
    out = model(images, hole, ["s"])
    assert out.shape == images.shape
    big, bighole = _batch(1, RES * 2, RES)
    with pytest.raises(InputError, match=f"at most {RES}x{RES}"):
        model(big, bighole, ["b"])


# --------------------------------------------------------------------------- loading


def test_pth_and_safetensors_round_trip(gen, tmp_path) -> None:
    from safetensors.torch import save_file

    sd = gen.state_dict()
    torch.save(sd, tmp_path / "g.pth")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "g.safetensors"))
    torch.save({"module." + k: v for k, v in sd.items()}, tmp_path / "dp.pth")
    for name in ("g.pth", "g.safetensors", "dp.pth"):
        loaded = load_generator(tmp_path / name)
        assert loaded.resolution == RES  # inferred from the G_RxR keys
        for k, v in loaded.state_dict().items():
            assert torch.equal(v, sd[k]), (name, k)


def test_wrong_keys_are_listed(gen, tmp_path) -> None:
    sd = dict(gen.state_dict())
    sd.pop("G_synthesis.G_4x4.Dense.weight")
    sd.pop("G_mapping.G_mapping.Dense3.bias")
    sd["G_synthesis.extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(WeightsError) as e:
        load_generator(tmp_path / "bad.pth")
    msg = str(e.value)
    assert "bad.pth" in msg and "2 missing keys" in msg and "1 unexpected keys" in msg
    assert "G_synthesis.G_4x4.Dense.weight" in msg and "G_mapping.G_mapping.Dense3.bias" in msg
    assert "G_synthesis.extra.weight" in msg

    sd = dict(gen.state_dict())
    sd["G_synthesis.G_8x8.Conv1.activate.bias"] = torch.zeros(3)
    torch.save(sd, tmp_path / "shape.pth")
    with pytest.raises(WeightsError, match=r"1 shape mismatches: "
                       r"G_synthesis\.G_8x8\.Conv1\.activate\.bias"):
        load_generator(tmp_path / "shape.pth")


class _Payload:  # pickled object whose loading would run code with weights_only=False
    def __reduce__(self):
        return (print, ("executed",))


def test_pickled_code_is_refused(tmp_path, capsys) -> None:
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"G_mapping.G_mapping.Dense0.weight": _Payload()}, f)
    with pytest.raises(WeightsError, match="evil.pth"):
        read_state_dict(path)
    assert "executed" not in capsys.readouterr().out
    (tmp_path / "page.pth").write_text("<html>sign in</html>")
    with pytest.raises(WeightsError, match="page.pth"):
        read_state_dict(tmp_path / "page.pth")
    torch.save({"state": {"nested": 1}}, tmp_path / "wrapped.pth")
    with pytest.raises(WeightsError, match="plain state_dict"):
        read_state_dict(tmp_path / "wrapped.pth")


# --------------------------------------------------------------------------- registry


def test_registered_model_and_weights_entries(gen, tmp_path, monkeypatch) -> None:
    info = get_model_info("comodgan")
    assert info.requires.size_multiple == 512 and info.requires.samples and info.requires.native_resolution == 512
    assert set(info.requires.weights) == {"comodgan-places2-512", "comodgan-ffhq-512", "comodgan-ffhq-1024"}
    e = wreg.get("comodgan-places2-512")
    assert e.filename == "co-mod-gan-places2-050000.pth" and e.sha256 is None and "sharepoint" in e.manual
    assert wreg.get("comodgan-ffhq-1024").extra["resolution"] == 1024

    m = create_model("comodgan", smoke=True, resolution=RES, dropout="off")
    assert m.smoke and m.provenance()["smoke"] and m.provenance()["dropout"] == "off"
    assert m.generator.resolution == RES and m.generator.global_dim == 1024  # full width
    again = create_model("comodgan", smoke=True, resolution=RES)  # deterministic smoke weights
    key = "G_synthesis.G_4x4.Dense.weight"
    assert torch.equal(m.generator.state_dict()[key], again.generator.state_dict()[key])
    images, hole = _batch(1)
    assert m(images, hole, ["q"]).shape == images.shape

    torch.save(gen.state_dict(), tmp_path / "mine.pth")
    m2 = create_model("comodgan", weights=str(tmp_path / "mine.pth"))
    assert not m2.smoke and len(m2.provenance()["weights"]["sha256"]) == 64

    monkeypatch.setenv("MATBENCH_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    with pytest.raises(WeightsError, match="co-mod-gan-places2-050000.pth"):
        create_model("comodgan")
    with pytest.raises(SpecError, match="dropout"):
        create_model("comodgan", smoke=True, resolution=RES, dropout="maybe")
    with pytest.raises(SpecError, match="dropuot"):  # misspelt options are errors, not silently ignored
        create_model("comodgan", smoke=True, dropuot="off")
