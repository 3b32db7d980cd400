"""A normal `eval` shows no warnings that are not about the user's data (issue 25, item 9): torch's TorchScript
deprecation notices (NVIDIA's detector is a TorchScript file) and torchvision's notices for lpips's
`pretrained=` call are filtered at their call sites, exactly those messages; nothing is filtered globally."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from golden_helpers import NvidiaStandIn
from PIL import Image

from matbench.cli import main
from matbench.metrics.lpips import _build_lpips


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    d = tmp_path_factory.mktemp("quiet")
    rng = np.random.default_rng(0)
    for sub in ("gt", "res", "masks"):
        (d / sub).mkdir()
    for i in range(3):
        g = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        hole = np.zeros((32, 32), bool)
        hole[8:24, 6:20] = True
        r = g.copy()
        r[hole] = 127
        Image.fromarray(g).save(d / "gt" / f"{i}.png")
        Image.fromarray(r).save(d / "res" / f"{i}.png")
        Image.fromarray(np.where(hole, 0, 255).astype(np.uint8)).save(d / "masks" / f"{i}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # making the stand-in detector is the test's business, not eval's
        torch.jit.script(NvidiaStandIn()).save(str(d / "inception-2015-12-05.pt"))
    return d


def _eval(d, out, *extra):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every warning, even one already shown once in this process
        rc = main(["eval", "--results", str(d / "res"), "--gt", str(d / "gt"), "--bootstrap", "5",
                   "--no-history", "--workers", "0", "-o", str(d / out), *extra])
    assert rc == 0
    return [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught
            if not issubclass(w.category, ResourceWarning)]


def test_building_lpips_warns_nothing() -> None:
    # lpips builds its torchvision trunk through `pretrained=`, which torchvision calls deprecated
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _build_lpips("alex")
    assert [str(w.message) for w in caught] == []


def test_eval_with_the_nvidia_torchscript_detector_warns_nothing(folders) -> None:
    assert _eval(folders, "b", "--metrics", "fid,pids", "--inception", "inception-nvidia", "--inception-path",
                 str(folders / "inception-2015-12-05.pt")) == []
