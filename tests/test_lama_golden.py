"""LaMa port vs outputs of the official code (../shared/golden/lama, see its README).

Weights: the shared fill rule applied to manifest.json (BN running stats calibrated there).
Each resolution runs one forward, computed once per module (a 512 forward takes seconds on CPU).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from golden_helpers import fill_module
from matbench.baselines.lama.checkpoint import LamaCheckpoint, build_generator
from matbench.baselines.lama.inpainter import LamaInpainter, lama_forward, pad_to_modulo, to_uint8
from matbench.baselines.lama.network import BIG_LAMA, FFCResNetGenerator, count_parameters

TOL = 1e-4




@pytest.fixture(scope="module")
def manifest(golden):
    return json.loads((golden / "lama" / "manifest.json").read_text())


@pytest.fixture(scope="module")
def gen(golden, manifest):
    fill = fill_module(golden)
    state = fill.fill_state_dict(manifest["tensors"])
    for t in manifest["tensors"]:
        if not t["fill"]:  # num_batches_tracked: int64 zero, checked against its sha256 below
            state[t["name"]] = torch.zeros(t["shape"], dtype=torch.int64)
    return build_generator(LamaCheckpoint(config=BIG_LAMA, generator_state=state))


@pytest.fixture(scope="module")
def io(golden):
    with np.load(golden / "lama" / "io.npz") as z:
        return {k: z[k] for k in z.files}


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def test_names_shapes_and_counts_match_manifest(golden, manifest):
    with torch.device("meta"):
        model = FFCResNetGenerator(BIG_LAMA)
    sd = model.state_dict()
    entries = manifest["tensors"]
    assert list(sd) == [t["name"] for t in entries]  # same names, same order
    assert [list(v.shape) for v in sd.values()] == [t["shape"] for t in entries]
    assert count_parameters(model) == manifest["reference"]["n_parameters"] == 50_975_875
    fill = fill_module(golden)
    for t in entries:
        if not t["fill"]:
            assert fill.tensor_sha256(torch.zeros(t["shape"], dtype=torch.int64)) == t["sha256"]


@pytest.fixture(scope="module")
def out256(gen, io):
    img = _t(np.concatenate([io["places_256/image"], io["celeba_256/image"]]))
    mask = _t(np.concatenate([io["places_256/mask"], io["celeba_256/mask"]]))
    return lama_forward(gen, img, mask)


@pytest.mark.parametrize("i,name", [(0, "places_256"), (1, "celeba_256")])
def test_256(out256, io, i, name):
    assert torch.equal(out256["gen_input"][i: i + 1], _t(io[f"{name}/gen_input"]))
    assert (out256["predicted"][i: i + 1] - _t(io[f"{name}/predicted"])).abs().max().item() <= TOL
    assert (out256["inpainted"][i: i + 1] - _t(io[f"{name}/inpainted"])).abs().max().item() <= TOL


def test_512(gen, io):
    # places only: celeba is covered at 256, and each 512 forward costs seconds of CPU
    img, mask = _t(io["places_512/image"]), _t(io["places_512/mask"])
    out = lama_forward(gen, img, mask)
    for i, name in enumerate(("places_512",)):
        ref_pred = io[f"{name}/predicted"]
        assert (out["predicted"][i: i + 1] - _t(ref_pred)).abs().max().item() <= TOL
        # README: inpainted at 512 = np.where(mask > 0, predicted, image)
        ref_inp = np.where(io[f"{name}/mask"] > 0, ref_pred, io[f"{name}/image"])
        assert (out["inpainted"][i: i + 1] - _t(ref_inp)).abs().max().item() <= TOL


def test_crop_padding_is_numpy_symmetric(io):
    c = "places_crop373x500_pad8"
    img_orig = io[f"{c}/image"][..., :373, :500]
    assert torch.equal(pad_to_modulo(_t(img_orig)), _t(io[f"{c}/image"]))
    assert torch.equal(pad_to_modulo(_t(io[f"{c}/mask_orig"])), _t(io[f"{c}/mask"]))
    y, x = io["crop_origin_yx_in_places_512"]
    assert np.array_equal(img_orig, io["places_512/image"][..., y: y + 373, x: x + 500])


def test_crop_through_the_adapter(gen, io):
    """uint8 in / uint8 out on the odd-sized crop: padding, generator input, prediction, quantisation."""
    c = "places_crop373x500_pad8"
    seen = {}
    hooks = [gen.register_forward_pre_hook(lambda m, a: seen.__setitem__("input", a[0].clone())),
             gen.register_forward_hook(lambda m, a, o: seen.__setitem__("predicted", o.clone()))]
    try:
        img_u8 = _t(np.rint(io[f"{c}/image"][..., :373, :500] * 255).astype(np.uint8))
        hole = _t(io[f"{c}/mask_orig"] > 0)
        out = LamaInpainter(gen)(img_u8, hole, ["crop"])
    finally:
        for h in hooks:
            h.remove()
    pimg, pmask = _t(io[f"{c}/image"]), _t(io[f"{c}/mask"])
    assert torch.equal(seen["input"], torch.cat([pimg * (1 - pmask), pmask], dim=1))
    assert (seen["predicted"] - _t(io[f"{c}/predicted"])).abs().max().item() <= TOL

    ref = _t(io[f"{c}/output_u8_hwc"]).permute(2, 0, 1)[None]
    diff = (out.int() - ref.int()).abs()
    h3 = hole.expand_as(out)
    assert diff[h3].max().item() <= 1  # ±1 only where truncation sits on a boundary
    assert (diff[h3] > 0).float().mean().item() < 1e-3
    assert torch.equal(out[~h3], img_u8[~h3])  # known pixels are the input's

    # the float path on the same crop reproduces inpainted_unpadded and, truncated, the official uint8 file
    inp = seen["predicted"] * pmask + (1 - pmask) * pimg
    inp = inp[..., :373, :500]
    assert (inp - _t(io[f"{c}/inpainted_unpadded"])).abs().max().item() <= TOL
    assert (to_uint8(inp).int() - ref.int()).abs().max().item() <= 1
