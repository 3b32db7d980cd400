"""`matbench models`: every registered model with description, requirements and weights status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matbench.cli import main
from matbench.models import list_models


@pytest.fixture
def weights_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wdir = tmp_path / "weights"
    wdir.mkdir()
    monkeypatch.setenv("MATBENCH_WEIGHTS", str(wdir))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))  # an empty hub cache
    return wdir


def _json(capsys: pytest.CaptureFixture, *args: str) -> dict:
    assert main(["models", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_lists_every_registered_model_with_requirements(weights_env: Path, capsys) -> None:
    data = _json(capsys)
    names = [m["name"] for m in data["models"]]
    assert names == sorted(names)
    assert set(names) == {i.name for i in list_models()}
    assert {"mean-fill", "opencv-telea", "opencv-ns", "comodgan", "precomputed"} <= set(names)
    cm = next(m for m in data["models"] if m["name"] == "comodgan")
    assert cm["source"] == "builtin" and "CoModGAN" in cm["description"]
    assert cm["requires"] == {"weights": ["comodgan-places2-512", "comodgan-ffhq-512", "comodgan-ffhq-1024"],
                              "size_multiple": 512, "samples": True, "native_resolution": 512}
    assert [w["status"] for w in cm["weights"]] == ["missing"] * 3
    mf = next(m for m in data["models"] if m["name"] == "mean-fill")
    assert mf["weights"] == [] and mf["requires"]["samples"] is False


def test_found_weights_are_reported_with_their_path(weights_env: Path, capsys) -> None:
    f = weights_env / "co-mod-gan-ffhq-9-025000.pth"
    f.write_bytes(b"not checked here")  # status only looks for the file; it does not hash or load
    data = _json(capsys, "comodgan")
    assert [m["name"] for m in data["models"]] == ["comodgan"]
    status = {w["name"]: (w["status"], w["path"]) for w in data["models"][0]["weights"]}
    assert status["comodgan-ffhq-512"] == ("found", str(f))
    assert status["comodgan-places2-512"] == ("missing", None)

    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert f"comodgan-ffhq-512: found ({f})" in text and "comodgan-places2-512: missing" in text
    assert "mean-fill  [builtin]" in text and "weights: none" in text


def test_reference_and_unknown_names(weights_env: Path, capsys) -> None:
    data = _json(capsys, "matbench.baselines.classical:mean_fill")
    assert data["models"][0]["source"] == "reference"
    assert main(["models", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_size_need_follows_the_resolution_option(weights_env: Path, capsys) -> None:
    """MAT lists `resolution 256 | 512`: its size need says the multiple follows that option (issue 25)."""
    assert main(["models", "mat"]) == 0
    needs = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("needs:"))
    assert "size multiple of the resolution option (256 | 512; 512 by default)" in needs
    assert main(["models", "mean-fill"]) == 0  # no resolution option: the plain multiple
    assert "needs: size multiple 1," in capsys.readouterr().out
