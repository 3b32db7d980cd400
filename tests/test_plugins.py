"""Third-party models: a tiny plugin package installed into a temporary directory, found through the
`matbench.models` entry-point group, listed by `matbench models` and run by `matbench inpaint`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PLUGIN_PY = '''
"""A toy matbench plugin: fills every hole with one colour (option `value`)."""
from __future__ import annotations

import torch

from matbench.models.base import Inpainter, Requirements


class ToyFill(Inpainter):
    name = "toy-fill"
    requires = Requirements()

    def __init__(self, value: int = 200) -> None:
        super().__init__()
        self.value = int(value)

    def inpaint(self, images, hole, ids, seed, sample):
        fill = torch.full_like(images, self.value)
        return torch.where(hole.expand_as(images), fill, images)

    def provenance(self):
        return {**super().provenance(), "value": self.value}


def make_model(value: int = 200, device: str = "cpu", **_) -> Inpainter:
    """Toy plugin: one colour in every hole."""
    return ToyFill(value).to(device)


make_model.requires = ToyFill.requires
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "matbench-toy-plugin"
version = "0.1.0"

[project.entry-points."matbench.models"]
toy-fill = "toy_plugin:make_model"
toy-broken = "toy_plugin_missing:make_model"

[tool.setuptools]
py-modules = ["toy_plugin"]
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    src = root / "src"
    src.mkdir()
    (src / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (src / "toy_plugin.py").write_text(PLUGIN_PY)
    site = root / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
           "--disable-pip-version-check", "--quiet", "--target", str(site), str(src)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert any(p.name.endswith(".dist-info") for p in site.iterdir())
    return site


def _matbench(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["MATBENCH_OFFLINE"] = "1"
    return subprocess.run([sys.executable, "-m", "matbench", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_models_lists_the_plugin_and_reports_a_broken_one(plugin_site: Path) -> None:
    r = _matbench(plugin_site, "models", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    by_name = {m["name"]: m for m in data["models"]}
    assert by_name["toy-fill"]["source"] == "entry-point"
    assert by_name["toy-fill"]["description"] == "Toy plugin: one colour in every hole."
    assert {"mean-fill", "comodgan", "precomputed"} <= set(by_name)  # built-ins still there
    broken = {b["name"]: b for b in data["broken_entry_points"]}
    assert "toy_plugin_missing" in broken["toy-broken"]["error"]
    text = _matbench(plugin_site, "models")
    assert text.returncode == 0 and "toy-fill  [entry-point]" in text.stdout and "NOT LOADABLE" in text.stdout


def _write_inputs(root: Path) -> tuple[Path, Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    images, masks = root / "images", root / "masks"
    images.mkdir()
    masks.mkdir()
    imgs, holes = {}, {}
    for iid in ("p", "q"):
        imgs[iid] = rng.integers(0, 256, (16, 12, 3), dtype=np.uint8)
        hole = np.zeros((16, 12), bool)
        hole[3:9, 2:7] = True
        holes[iid] = hole
        Image.fromarray(imgs[iid]).save(images / f"{iid}.png")
        Image.fromarray(np.where(hole, 0, 255).astype(np.uint8)).save(masks / f"{iid}.png")  # 255 = known
    return images, masks, imgs, holes


@pytest.mark.parametrize("model", ["toy-fill", "toy_plugin:make_model"])
def test_inpaint_runs_the_plugin(plugin_site: Path, tmp_path: Path, model: str) -> None:
    images, masks, imgs, holes = _write_inputs(tmp_path)
    out = tmp_path / "out"
    r = _matbench(plugin_site, "inpaint", "--model", model, "--images", str(images), "--masks", str(masks),
                  "--mask-polarity", "known=255", "--option", "value=77", "-o", str(out))
    assert r.returncode == 0, r.stderr
    for iid in ("p", "q"):
        res = np.asarray(Image.open(out / f"{iid}.png").convert("RGB"))
        assert (res[holes[iid]] == 77).all()
        np.testing.assert_array_equal(res[~holes[iid]], imgs[iid][~holes[iid]])


def test_unknown_model_error_mentions_the_plugin(plugin_site: Path) -> None:
    r = _matbench(plugin_site, "models", "no-such-model")
    assert r.returncode == 2
    assert "unknown model 'no-such-model'" in r.stderr and "toy-fill" in r.stderr and "Traceback" not in r.stderr
