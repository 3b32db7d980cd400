"""MI-GAN port vs the official generator's outputs (tests/fixtures/migan, made by scripts/make_migan_golden.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from golden_helpers import fill_module
from matbench.baselines.migan.checkpoint import infer_resolution, load_generator, load_into
from matbench.baselines.migan.inpainter import MIGANInpainter
from matbench.baselines.migan.network import MIGANGenerator, count_parameters

from matbench.errors import WeightsError

FIX = Path(__file__).parent / "fixtures" / "migan"
TOL = 1e-4
CASES = {256: ["places_256", "celeba_256"], 512: ["places_512"]}




@pytest.fixture(scope="module")
def io():
    with np.load(FIX / "io.npz") as z:
        return {k: z[k] for k in z.files}


def _state(golden, res):
    fill = fill_module(golden)
    tensors = json.loads((FIX / f"manifest_{res}.json").read_text())["tensors"]
    state = fill.fill_state_dict(tensors)
    for t in tensors:
        if "scale" in t:
            state[t["name"]] = state[t["name"]] * t["scale"]
    return fill, tensors, state


@pytest.fixture(scope="module")
def gens(golden):
    out = {}
    for res in CASES:
        _, _, state = _state(golden, res)
        g = MIGANGenerator(res)
        full = g.state_dict()
        full.update(state)  # constants: the port's own
        load_into(g, full, f"manifest_{res}")
        out[res] = g.eval()
    return out


@pytest.mark.parametrize("res", [256, 512])
def test_names_shapes_constants_match_official(golden, res):
    fill, tensors, _ = _state(golden, res)
    sd = MIGANGenerator(res).state_dict()
    assert list(sd) == [t["name"] for t in tensors]
    assert [list(v.shape) for v in sd.values()] == [t["shape"] for t in tensors]
    for t in tensors:
        if not t["fill"]:
            assert fill.tensor_sha256(sd[t["name"]]) == t["sha256"], t["name"]
    facts = json.loads((FIX / "facts.json").read_text())
    assert count_parameters(MIGANGenerator(res)) == facts["resolutions"][str(res)]["n_parameters"]


@pytest.mark.parametrize("res,name", [(256, "places_256"), (256, "celeba_256"),
                                      pytest.param(512, "places_512", marks=pytest.mark.slow)])
def test_port_matches_official(gens, io, res, name):
    model = MIGANInpainter(gens[res])
    img = torch.from_numpy(io[f"{name}/image"])[None]
    hole = torch.from_numpy(io[f"{name}/hole"])[None, None]
    seen = {}
    handle = gens[res].register_forward_hook(lambda m, i, o: seen.update(x=i[0], y=o))
    out = model(img, hole, [name])[0]  # one forward (a 512 forward takes seconds on a loaded CPU)
    handle.remove()
    x, y = seen["x"], seen["y"]
    assert torch.equal(x[:, :, ::4, ::4], torch.from_numpy(io[f"{name}/gen_input_s4"]))  # same input convention
    ref = torch.from_numpy(io[f"{name}/raw"])
    got = y if res == 256 else y[:, :, ::8, ::8]
    assert (got - ref).abs().max().item() <= TOL
    want = torch.from_numpy(io[f"{name}/output_u8"])
    # uint8 after truncation: a raw value within 1e-4 of a level boundary may land one level off
    diff = (out.int() - want.int()).abs()
    assert diff.max().item() <= 1 and (diff > 0).float().mean().item() < 1e-3
    assert torch.equal(out[:, ~hole[0, 0]], img[0][:, ~hole[0, 0]])


@pytest.mark.slow
def test_resize_fit_matches_the_official_demo_on_a_non_square_image(gens, io):
    model = MIGANInpainter(gens[512], fit="resize")
    img = torch.from_numpy(io["places_crop373x500/image"])[None]
    hole = torch.from_numpy(io["places_crop373x500/hole"])[None, None]
    out = model(img, hole, ["crop"])[0]
    want = torch.from_numpy(io["places_crop373x500/output_u8_resize"])
    diff = (out.int() - want.int()).abs()
    assert diff.max().item() <= 1 and (diff > 0).float().mean().item() < 1e-3


def test_outputs_depend_on_the_image(io):
    # guards against a fixture where the weights drown the input (see tests/fixtures/migan/README.md)
    a, b = io["places_256/raw"], io["celeba_256/raw"]
    assert np.abs(a - b).mean() > 0.05


def test_release_file_roundtrip_and_strictness(tmp_path):
    ref = MIGANGenerator(32).eval()  # the checks do not depend on the size; 32 keeps them fast
    p = tmp_path / "migan_32.pt"
    torch.save(ref.state_dict(), p)
    g = load_generator(p)
    assert g.resolution == 32
    x = torch.rand(1, 4, 32, 32) - 0.5
    with torch.no_grad():
        assert torch.equal(g(x), ref(x))
    sd = ref.state_dict()
    assert infer_resolution(sd) == 32
    bad = dict(sd)
    bad.pop("encoder.b32.fromrgb.weight")
    torch.save(bad, p)
    with pytest.raises(WeightsError, match="missing keys: encoder.b32.fromrgb.weight"):
        load_generator(p)
    bad = dict(sd)
    bad["synthesis.b8.upsample.filter.weight"] = bad["synthesis.b8.upsample.filter.weight"] * 2
    torch.save(bad, p)
    with pytest.raises(WeightsError, match="fixed filter"):
        load_generator(p)
    torch.save({"state": 1}, p)
    with pytest.raises(WeightsError, match="plain state_dict"):
        load_generator(p)


class _Payload:  # a pickled object whose loading would run code with weights_only=False
    def __reduce__(self):
        return (print, ("executed",))


def test_pickled_code_refused_with_the_release_hint(tmp_path, capsys) -> None:
    from matbench.models.statecheck import RefusedPickleError

    torch.save({"synthesis.b8.conv.weight": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(RefusedPickleError, match=r"evil\.pt: refused: .*nothing from the file was executed.*"
                                                 r"expected migan_\*\.pt from the official release"):
        load_generator(tmp_path / "evil.pt")
    assert "executed" not in capsys.readouterr().out
    with pytest.raises(WeightsError, match="MI-GAN state_dict file does not exist"):
        load_generator(tmp_path / "absent.pt")
