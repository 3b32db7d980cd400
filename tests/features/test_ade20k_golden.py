"""ADE20k segmentation port vs the official network of LaMa's evaluation (tests/fixtures/ade20k, made by
scripts/make_ade20k_golden.py from advimman/lama models/ade20k on deterministic weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from golden_helpers import fill_module

from matbench.errors import WeightsError
from matbench.features.segmentation import CLASS_NAMES, ADE20kSegmenter, load_into, load_segmenter

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "ade20k"
TOL = 1e-4
RUNS = {"batch2": ["places_128", "celeba_128"], "single": ["places_75x101"]}




@pytest.fixture(scope="module")
def manifest() -> list[dict]:
    return json.loads((FIX / "manifest.json").read_text())["tensors"]


@pytest.fixture(scope="module")
def io() -> dict[str, np.ndarray]:
    with np.load(FIX / "io.npz") as z:
        return {k: z[k] for k in z.files}


def _split(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    enc = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    dec = {k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")}
    return enc, dec


@pytest.fixture(scope="module")
def seg(golden, manifest) -> ADE20kSegmenter:
    state = fill_module(golden).fill_state_dict(manifest)
    model = ADE20kSegmenter()
    full = model.state_dict()
    full.update(state)  # num_batches_tracked (fill: false) stays the port's own 0
    enc, dec = _split(full)
    return load_into(model, enc, dec).eval()


@pytest.fixture(scope="module")
def outputs(seg, io) -> dict[str, dict[str, torch.Tensor]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the fixture was made (threads change the order of additions)
    out: dict[str, dict[str, torch.Tensor]] = {}
    seen: dict[str, torch.Tensor] = {}
    handle = seg.decoder.conv_last.register_forward_hook(lambda m, i, o: seen.update(logits=o))
    try:
        for names in RUNS.values():
            x = torch.from_numpy(np.stack([io[f"{n}/image"] for n in names]))
            with torch.no_grad():
                probs = seg(x)
            for i, n in enumerate(names):
                out[n] = {"probs": probs[i], "pred": probs[i].max(dim=0).indices, "logits": seen["logits"][i]}
    finally:
        handle.remove()
        torch.set_num_threads(threads)
    return out


def test_names_shapes_and_size_match_official(seg, manifest):
    sd = seg.state_dict()
    assert list(sd) == [t["name"] for t in manifest]
    assert [list(v.shape) for v in sd.values()] == [t["shape"] for t in manifest]
    facts = json.loads((FIX / "facts.json").read_text())
    assert sum(p.numel() for p in seg.parameters()) == facts["n_parameters"] == 51_579_116
    assert len(CLASS_NAMES) == 150 and CLASS_NAMES[0] == "wall" and CLASS_NAMES[2] == "sky"


@pytest.mark.parametrize("name", ["places_128", "celeba_128", "places_75x101"])
def test_port_matches_official(outputs, io, name):
    got = outputs[name]
    logits = got["logits"].numpy()
    assert np.abs(logits - io[f"{name}/logits"]).max() <= TOL * max(1.0, float(np.abs(logits).max()))
    probs_s8 = got["probs"][:, ::8, ::8].numpy()
    assert np.abs(probs_s8 - io[f"{name}/probs_s8"]).max() <= TOL
    # argmax: identical wherever the official top-2 margin leaves room for float rounding
    pred, ref, margin = got["pred"].numpy(), io[f"{name}/pred"], io[f"{name}/margin"]
    assert pred.shape == ref.shape
    sure = margin > 1e-5
    assert (pred[sure] == ref[sure]).all()
    assert (pred == ref).mean() > 0.998


def test_fixture_is_not_trivial(io):
    # a test on a constant map would check nothing: several classes per image, and the images differ
    for name in ("places_128", "celeba_128", "places_75x101"):
        assert np.unique(io[f"{name}/pred"]).size >= 5
    assert not np.array_equal(io["places_128/pred"], io["celeba_128/pred"])


def test_strict_loading_names_the_problem(seg):
    enc, dec = _split(seg.state_dict())
    enc.pop("conv1.weight")
    with pytest.raises(WeightsError, match="missing keys: conv1.weight"):
        load_into(ADE20kSegmenter(), enc, dec)


def test_weight_files_are_read_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"conv1.weight": Evil()}, tmp_path / "evil.pth")
    torch.save({"ppm.0.1.weight": torch.zeros(1)}, tmp_path / "decoder.pth")
    with pytest.raises(WeightsError, match="refused"):
        load_segmenter(tmp_path / "evil.pth", tmp_path / "decoder.pth")
