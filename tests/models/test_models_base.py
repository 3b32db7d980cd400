"""The Inpainter contract, the model registry, and the weight-free classical baselines."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from matbench.errors import SpecError
from matbench.models import Inpainter, create_model, get_model_info, list_models
from matbench.models.base import register_model


def _batch(n: int = 2, h: int = 24, w: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)
    hole = torch.zeros(n, 1, h, w, dtype=torch.bool)
    hole[:, :, 5:15, 8:20] = True
    return images, hole


def test_classical_models_are_registered() -> None:
    names = {m.name for m in list_models()}
    assert {"mean-fill", "opencv-telea", "opencv-ns"} <= names


@pytest.mark.parametrize("method,flag", [("telea", cv2.INPAINT_TELEA), ("ns", cv2.INPAINT_NS)])
def test_opencv_baseline_equals_cv2_inpaint(method: str, flag: int) -> None:
    images, hole = _batch()
    model = create_model(f"opencv-{method}", radius=5)
    out = model(images, hole, ["a", "b"])
    for i in range(2):
        img = np.ascontiguousarray(images[i].numpy().transpose(1, 2, 0))
        ref = cv2.inpaint(img, hole[i, 0].numpy().astype(np.uint8) * 255, 5, flag)
        np.testing.assert_array_equal(out[i].numpy().transpose(1, 2, 0), ref)


def test_mean_fill_by_hand() -> None:
    images = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    images[0, :, 0, 0] = torch.tensor([10, 20, 30])
    images[0, :, 0, 1] = torch.tensor([11, 20, 31])
    images[0, :, 1, 0] = torch.tensor([12, 21, 200])  # hole pixel: its value must not count
    hole = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    hole[0, 0, 1, :] = True
    out = create_model("mean-fill")(images, hole, ["x"])
    # known pixels: (10,20,30), (11,20,31) -> mean (10.5, 20, 30.5) -> round half to even: (10, 20, 30)
    assert out[0, :, 1, 0].tolist() == [10, 20, 30]
    assert out[0, :, 1, 1].tolist() == [10, 20, 30]
    assert torch.equal(out[0, :, 0], images[0, :, 0])


def test_contract_rejects_bad_inputs() -> None:
    images, hole = _batch()
    model = create_model("mean-fill")
    with pytest.raises(TypeError, match="uint8"):
        model(images.float(), hole, ["a", "b"])
    with pytest.raises(TypeError, match="bool"):
        model(images, hole.to(torch.uint8), ["a", "b"])
    with pytest.raises(ValueError, match="ids"):
        model(images, hole, ["a"])
    with pytest.raises(ValueError, match="does not match"):
        model(images, hole[:, :, :10], ["a", "b"])


def test_contract_restores_known_pixels_and_checks_output() -> None:
    class Noisy(Inpainter):
        name = "noisy"

        def inpaint(self, images, hole, ids, seed, sample):
            return torch.full_like(images, 7)

    class Wrong(Inpainter):
        name = "wrong"

        def inpaint(self, images, hole, ids, seed, sample):
            return images.float()

    images, hole = _batch()
    out = Noisy()(images, hole, ["a", "b"])
    assert torch.equal(out[~hole.expand_as(out)], images[~hole.expand_as(images)])
    assert (out[hole.expand_as(out)] == 7).all()
    with pytest.raises(RuntimeError, match="expected uint8"):
        Wrong()(images, hole, ["a", "b"])


def test_unknown_model_and_references(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SpecError, match="unknown model 'nope'"):
        create_model("nope")
    with pytest.raises(SpecError, match="refused to import 'no_such_pkg_xyz.mod'.*TRUSTED_MODULES=no_such_pkg_xyz"):
        create_model("no_such_pkg_xyz.mod:factory")  # not trusted: not even imported
    monkeypatch.setenv("MATBENCH_TRUSTED_MODULES", "no_such_pkg_xyz")
    with pytest.raises(SpecError, match="cannot import"):
        create_model("no_such_pkg_xyz.mod:factory")
    info = get_model_info("matbench.baselines.classical:mean_fill")
    assert info.source == "reference"
    assert isinstance(create_model("matbench.baselines.classical:mean_fill"), Inpainter)


def test_register_twice_is_an_error() -> None:
    @register_model("test-dup-model")
    def f(**_):  # pragma: no cover - never called
        raise AssertionError

    with pytest.raises(ValueError, match="already registered"):
        register_model("test-dup-model")(lambda **_: None)
