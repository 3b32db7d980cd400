"""The 'precomputed' model: result images read from a folder, paired by id like `matbench eval`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from matbench.errors import InputError, SpecError
from matbench.models import create_model, get_model_info


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _inputs(n: int, h: int = 8, w: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.full((n, 3, h, w), 10, dtype=torch.uint8)
    hole = torch.zeros(n, 1, h, w, dtype=torch.bool)
    hole[:, :, 2:5, 1:4] = True
    return images, hole


@pytest.fixture
def results(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    arrs = {iid: rng.integers(0, 256, (8, 6, 3), dtype=np.uint8) for iid in ("a", "sub/b", "c")}
    root = tmp_path / "res"
    _save(root / "a.png", arrs["a"])
    _save(root / "sub" / "b.png", arrs["sub/b"])
    _save(root / "c.bmp", arrs["c"])
    return root, arrs


def test_outputs_are_the_files_paired_by_id(results) -> None:
    root, arrs = results
    model = create_model("precomputed", path=str(root))
    images, hole = _inputs(2)
    out = model(images, hole, ["sub/b", "a"])  # order of the batch, not of the folder
    for i, iid in enumerate(["sub/b", "a"]):
        ref = torch.from_numpy(arrs[iid].transpose(2, 0, 1).copy())
        h = hole[i].expand(3, -1, -1)
        assert torch.equal(out[i][h], ref[h])  # hole: the stored result
        assert torch.equal(out[i][~h], images[i][~h])  # known: the input (Inpainter contract)
    assert model.provenance()["n_results"] == 3 and len(model.provenance()["listing_sha256"]) == 64


def test_ids_match_eval_pairing(results) -> None:
    from matbench.features import list_images

    root, arrs = results
    assert set(list_images(root)) == set(arrs)


def test_missing_id_names_the_id_and_folder(results) -> None:
    root, _ = results
    model = create_model("precomputed", path=str(root))
    images, hole = _inputs(1)
    with pytest.raises(InputError) as e:
        model(images, hole, ["sub/zzz"])
    assert "'sub/zzz'" in str(e.value) and str(root) in str(e.value)


def test_size_mismatch_names_the_file(results) -> None:
    root, _ = results
    model = create_model("precomputed", path=str(root))
    images, hole = _inputs(1, h=16, w=6)
    with pytest.raises(InputError) as e:
        model(images, hole, ["c"])
    assert str(root / "c.bmp") in str(e.value) and "6x8" in str(e.value) and "6x16" in str(e.value)


def test_per_sample_folders(tmp_path: Path) -> None:
    for s in (0, 1):
        _save(tmp_path / f"s{s}" / "x.png", np.full((8, 6, 3), 50 + s, dtype=np.uint8))
    model = create_model("precomputed", path=str(tmp_path / "s{sample}"))
    assert model.requires.samples
    images, hole = _inputs(1)
    for s in (0, 1):
        out = model(images, hole, ["x"], sample=s)
        assert int(out[0, 0, 3, 2]) == 50 + s
    with pytest.raises(InputError, match="s2"):
        model(images, hole, ["x"], sample=2)


def test_bad_options(tmp_path: Path) -> None:
    assert get_model_info("precomputed").source == "builtin"
    with pytest.raises(SpecError, match="path"):
        create_model("precomputed")
    with pytest.raises(InputError, match="does not exist"):
        create_model("precomputed", path=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no result images"):
        create_model("precomputed", path=str(tmp_path / "empty"))


def test_runs_through_matbench_inpaint(results, tmp_path: Path) -> None:
    from matbench.cli import main

    root, arrs = results
    images, masks = tmp_path / "in", tmp_path / "m"
    hole = np.zeros((8, 6), bool)
    hole[1:4, 2:5] = True
    for iid in ("a", "c"):
        _save(images / f"{iid}.png", np.full((8, 6, 3), 10, np.uint8))
        _save(masks / f"{iid}.png", np.where(hole, 255, 0).astype(np.uint8))  # LaMa polarity: 255 = hole
    out = tmp_path / "out"
    assert main(["inpaint", "--model", "precomputed", "--option", f"path={root}", "--images", str(images),
                 "--masks", str(masks), "--mask-polarity", "hole=255", "-o", str(out)]) == 0
    for iid in ("a", "c"):
        res = np.asarray(Image.open(out / f"{iid}.png"))
        np.testing.assert_array_equal(res[hole], arrs[iid][hole])
        assert (res[~hole] == 10).all()
