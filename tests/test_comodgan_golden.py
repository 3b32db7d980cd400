"""CoModGAN generator == the port zengxianyu/co-mod-gan-pytorch (master) on the golden fixtures.

Weights: the deterministic fill of ../shared/golden/fill.py; inputs, noise maps, latents and the
dropout keep mask from io.npz (see golden/comodgan/README.md). Tolerance 1e-4 (README: thread-count
differences reach 2.3e-5 at this output scale, which goes up to ~17).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from golden_helpers import fill_module
from matbench.baselines.comodgan.inpainter import load_into
from matbench.baselines.comodgan.network import CoModGenerator

ATOL = 1e-4
pytestmark = pytest.mark.slow  # two 512 forwards (~6-8 CPU-s each) plus filling 80M parameters




@pytest.fixture(scope="module")
def manifest(golden: Path) -> dict:
    return json.loads((golden / "comodgan" / "manifest.json").read_text())


@pytest.fixture(scope="module")
def io(golden: Path) -> dict[str, np.ndarray]:
    with np.load(golden / "comodgan" / "io.npz") as d:
        return {k: d[k] for k in d.files}


@pytest.fixture(scope="module")
def net(golden: Path, manifest: dict) -> CoModGenerator:
    fill = fill_module(golden)
    model = CoModGenerator(resolution=512)
    # Constants (FIR kernels) come from our own code; only parameters are filled.
    sd = {**model.state_dict(), **fill.fill_state_dict(manifest["tensors"])}
    load_into(model, sd, "golden fill")
    return model.eval()


def _run(net: CoModGenerator, io: dict[str, np.ndarray], keep: np.ndarray | None):
    noise = [torch.from_numpy(io[f"noise{i:02d}"]) for i in range(len(net.noise_shapes))]
    with torch.no_grad():
        return net(torch.from_numpy(io["images"]), torch.from_numpy(io["masks"]), torch.from_numpy(io["latents"]),
                   noise=noise, dropout_keep=None if keep is None else torch.from_numpy(keep))


@pytest.fixture(scope="module")
def out_eval(net, io):
    return _run(net, io, None)


@pytest.fixture(scope="module")
def out_dropout(net, io):
    return _run(net, io, io["dropout_keep"])


def test_tensor_names_shapes_and_order_match_manifest(golden: Path, manifest: dict) -> None:
    fill = fill_module(golden)
    model = CoModGenerator(resolution=512)
    sd = model.state_dict()
    tensors = manifest["tensors"]
    assert list(sd) == [t["name"] for t in tensors]
    assert len(sd) == 180
    for t in tensors:
        assert list(sd[t["name"]].shape) == t["shape"], t["name"]
        is_param = t["kind"] == "parameter"
        assert (t["name"] in dict(model.named_parameters())) == is_param, t["name"]
        if not t["fill"]:  # FIR constants: our kernels must be bit-identical to the port's
            assert fill.tensor_sha256(sd[t["name"]]) == t["sha256"], t["name"]
    assert sum(p.numel() for p in model.parameters()) == manifest["results"]["parameter_count"] == 79_792_231


def test_noise_shapes_match_golden_noise_maps(io, net) -> None:
    assert [tuple(io[f"noise{i:02d}"].shape) for i in range(15)] == net.noise_shapes


def _maxdiff(a: torch.Tensor, b: np.ndarray) -> float:
    assert tuple(a.shape) == b.shape
    return float((a - torch.from_numpy(b)).abs().max())


@pytest.mark.parametrize("key,attr", [("dlatent", "dlatent"), ("x_global", "x_global"),
                                      ("output_raw", "raw"), ("output_composited", "composited")])
def test_eval_outputs_equal_port(out_eval, io, key: str, attr: str) -> None:
    assert _maxdiff(getattr(out_eval, attr), io[key]) <= ATOL


def test_composited_keeps_known_pixels_exactly(out_eval, io) -> None:
    known = io["masks"] == 1
    comp = out_eval.composited.numpy()
    img = np.broadcast_to(io["images"], comp.shape)
    np.testing.assert_array_equal(comp[np.broadcast_to(known, comp.shape)], img[np.broadcast_to(known, comp.shape)])


def test_dropout_variant_equals_port_with_stored_keep_mask(out_dropout, out_eval, io) -> None:
    assert _maxdiff(out_dropout.x_global, io["x_global_dropout"]) <= ATOL
    crop = out_dropout.raw[:, :, 192:320, 192:320]
    assert _maxdiff(crop, io["output_raw_dropout_crop"]) <= ATOL
    # and the dropout actually changes the output (the check above is not vacuous)
    assert float((crop - out_eval.raw[:, :, 192:320, 192:320]).abs().max()) > 0.1
