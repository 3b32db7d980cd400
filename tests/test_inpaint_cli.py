"""`matbench inpaint`: generic over the model registry (opencv-telea baseline, MAT smoke at 256), plain mask
files with an explicit polarity or a mask set with maskset.json."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from matbench.cli import main
from matbench.io import read_image


def _write_inputs(tmp_path, n=3, size=(48, 64)):
    rng = np.random.default_rng(0)
    img_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    (img_dir / "sub").mkdir(parents=True)
    mask_dir.joinpath("sub").mkdir(parents=True)
    images, holes = {}, {}
    for i in range(n):
        image_id = f"sub/im{i}" if i == 0 else f"im{i}"
        img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        hole = np.zeros(size, dtype=bool)
        hole[8 + i: 30 + i, 10:40] = True
        Image.fromarray(img).save(img_dir / f"{image_id}.png")
        # MAT polarity: 255 = known
        Image.fromarray(np.where(hole, 0, 255).astype(np.uint8)).save(mask_dir / f"{image_id}.png")
        images[image_id], holes[image_id] = img, hole
    return img_dir, mask_dir, images, holes


def test_telea_with_plain_masks(tmp_path):
    img_dir, mask_dir, images, holes = _write_inputs(tmp_path)
    out = tmp_path / "out"
    rc = main(["inpaint", "--model", "opencv-telea", "--images", str(img_dir), "--masks", str(mask_dir),
               "--mask-polarity", "known=255", "-o", str(out), "--batch-size", "2"])
    assert rc == 0
    for image_id, img in images.items():
        res = read_image(out / f"{image_id}.png")
        h = holes[image_id]
        assert np.array_equal(res[~h], img[~h])
        assert not np.array_equal(res[h], img[h])


def test_wrong_polarity_changes_what_is_filled(tmp_path):
    img_dir, mask_dir, images, holes = _write_inputs(tmp_path, n=1)
    out = tmp_path / "out"
    assert main(["inpaint", "--model", "opencv-telea", "--images", str(img_dir), "--masks", str(mask_dir),
                 "--mask-polarity", "hole=255", "-o", str(out)]) == 0
    res, img, h = read_image(out / "sub/im0.png"), images["sub/im0"], holes["sub/im0"]
    assert np.array_equal(res[h], img[h])  # the marked region is now "known"


def test_polarity_required_without_maskset(tmp_path, capsys):
    img_dir, mask_dir, _, _ = _write_inputs(tmp_path, n=1)
    rc = main(["inpaint", "--model", "opencv-telea", "--images", str(img_dir), "--masks", str(mask_dir),
               "-o", str(tmp_path / "out")])
    assert rc == 2
    assert "--mask-polarity" in capsys.readouterr().err


def test_maskset_folder(tmp_path):
    from matbench.data.maskset import MaskSet, make_maskset

    rng = np.random.default_rng(1)
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    ids = ["a", "b"]
    for i in ids:
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(img_dir / f"{i}.png")
    ms_dir = tmp_path / "maskset"
    make_maskset("mat-small", 2, 64, 0, ms_dir, names=ids)
    ms = MaskSet.open(ms_dir)
    out = tmp_path / "out"
    assert main(["inpaint", "--model", "opencv-telea", "--images", str(img_dir), "--masks", str(ms_dir),
                 "-o", str(out)]) == 0
    for i in ids:
        h = ms.hole(i)
        assert np.array_equal(read_image(out / f"{i}.png")[~h], read_image(img_dir / f"{i}.png")[~h])


def test_mat_smoke_256(tmp_path, capsys):
    img_dir, mask_dir, images, holes = _write_inputs(tmp_path, n=1)
    out = tmp_path / "out"
    rc = main(["inpaint", "--model", "mat", "--smoke", "--option", "resolution=256", "--images", str(img_dir),
               "--masks", str(mask_dir), "--mask-polarity", "known=255", "-o", str(out), "--seed", "3"])
    assert rc == 0
    assert "SMOKE" in capsys.readouterr().out
    res, img, h = read_image(out / "sub/im0.png"), images["sub/im0"], holes["sub/im0"]
    assert res.shape == img.shape and np.array_equal(res[~h], img[~h])


def test_unknown_model_option_is_an_error(tmp_path, capsys):
    img_dir, mask_dir, _, _ = _write_inputs(tmp_path, n=1)
    rc = main(["inpaint", "--model", "mat", "--smoke", "--option", "bogus=1", "--images", str(img_dir),
               "--masks", str(mask_dir), "--mask-polarity", "known=255", "-o", str(tmp_path / "o")])
    assert rc == 2
    assert "bogus" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--batch-size", "0"], ["--samples", "0"]])
def test_bad_counts(tmp_path, bad, capsys):
    img_dir, mask_dir, _, _ = _write_inputs(tmp_path, n=1)
    rc = main(["inpaint", "--model", "opencv-telea", "--images", str(img_dir), "--masks", str(mask_dir),
               "--mask-polarity", "known=255", "-o", str(tmp_path / "o"), *bad])
    assert rc == 2
