"""Mask sets on disk: make, open, import with polarity, validation errors, stats, CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from matbench.cli import main
from matbench.data.masks import generate_mask
from matbench.data.maskset import MaskSet, hole_ratio_stats, import_maskset, make_maskset
from matbench.errors import InputError, SpecError
from matbench.io import sha256_file


def test_make_and_open(tmp_path):
    ms = make_maskset("mat-small", 4, 128, 7, tmp_path / "ms")
    assert ms.names == ["000000", "000001", "000002", "000003"]
    meta = json.loads((tmp_path / "ms" / "maskset.json").read_text())
    assert meta["generator"] == "mat-small" and meta["seed"] == 7 and meta["resolution"] == 128
    assert meta["polarity"] == "known=255" and meta["count"] == 4
    again = MaskSet.open(tmp_path / "ms")
    assert again.sha256 == sha256_file(tmp_path / "ms" / "maskset.json") == ms.sha256
    for i, e in enumerate(meta["masks"]):
        ref = generate_mask("mat-small", 128, 7 + i)
        assert np.array_equal(again.hole(i), ref) and np.array_equal(again.hole(e["name"]), ref)
        png = np.asarray(Image.open(tmp_path / "ms" / e["file"]))
        assert png.dtype == np.uint8 and set(np.unique(png)) <= {0, 255}
        assert np.array_equal(png == 0, ref)  # 255 = known on disk
        assert e["sha256"] == sha256_file(tmp_path / "ms" / e["file"])
        assert e["hole_ratio"] == pytest.approx(ref.mean(), abs=1e-8)
    np.testing.assert_allclose(again.hole_ratios(), [generate_mask("mat-small", 128, 7 + i).mean() for i in range(4)],
                               atol=1e-8)
    assert again.verify() == []


def test_names_from_ids_and_mapping(tmp_path):
    ms = make_maskset("lama-thin", 3, 64, 0, tmp_path / "ms", names=["a/x", "a/y", "b"])
    assert (tmp_path / "ms" / "a" / "y.png").is_file()
    assert ms.names_for(["b", "a/x"]) == ["b", "a/x"]
    idx = make_maskset("mat-large", 3, 64, 0, tmp_path / "idx")
    assert idx.names_for(["p", "q"]) == ["000000", "000001"]
    with pytest.raises(InputError, match="have no mask"):
        idx.names_for(["p", "q", "r", "s"])
    with pytest.raises(SpecError, match="appears twice"):
        make_maskset("mat-large", 2, 64, 0, tmp_path / "dup", names=["a", "a"])


def _write_masks(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        Image.fromarray(a).save(folder / f"{name}.png")
    return folder


def _holes(n: int, res: int = 64) -> list[np.ndarray]:
    return [generate_mask("mat-large", res, s) for s in range(n)]


def test_import_polarity_round_trip(tmp_path):
    holes = _holes(3)
    src = _write_masks(tmp_path / "mat", {f"m{i}": np.where(h, 0, 255).astype(np.uint8) for i, h in enumerate(holes)})
    ms = import_maskset(src, tmp_path / "out", "known=255")
    assert ms.resolution == 64 and ms.names == ["m0", "m1", "m2"]
    for i, h in enumerate(holes):
        assert np.array_equal(ms.hole(f"m{i}"), h)
    inv = import_maskset(src, tmp_path / "out2", "hole=255")
    for i, h in enumerate(holes):
        assert np.array_equal(inv.hole(i), ~h)
    assert inv.meta["params"]["source_polarity"] == "hole=255"


def test_import_rgb_masks(tmp_path):
    h = _holes(1)[0]
    rgb = np.repeat(np.where(h, 255, 0).astype(np.uint8)[..., None], 3, axis=2)
    ms = import_maskset(_write_masks(tmp_path / "lama", {"x": rgb}), tmp_path / "o", "hole=255")
    assert np.array_equal(ms.hole("x"), h)


def test_polarity_warning(tmp_path, caplog):
    tiny = np.full((32, 32), 255, np.uint8)
    tiny[0, :5] = 0  # hole ratio 0.005 as known=255
    src = _write_masks(tmp_path / "s", {"a": tiny, "b": tiny})
    with caplog.at_level(logging.WARNING):
        import_maskset(src, tmp_path / "o1", "known=255")
    assert "polarity may be inverted" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        import_maskset(src, tmp_path / "o2", "hole=255")  # hole ratio 0.995
    assert "polarity may be inverted" in caplog.text
    caplog.clear()
    ok = _write_masks(tmp_path / "ok", {"a": np.where(_holes(1)[0], 0, 255).astype(np.uint8)})
    with caplog.at_level(logging.WARNING):
        import_maskset(ok, tmp_path / "o3", "known=255")
    assert "polarity" not in caplog.text


def test_import_wrong_size_and_non_binary_name_the_file(tmp_path):
    a = np.where(_holes(1)[0], 0, 255).astype(np.uint8)
    src = _write_masks(tmp_path / "s", {"a": a, "b": np.zeros((32, 32), np.uint8)})
    with pytest.raises(InputError, match=r"b\.png: mask is 32x32, the others are 64x64"):
        import_maskset(src, tmp_path / "o", "known=255")
    soft = a.copy()
    soft[0, 0] = 128
    src2 = _write_masks(tmp_path / "s2", {"a": a, "soft": soft})
    with pytest.raises(InputError, match=r"soft\.png: mask has values other than 0 and 255.*--binarize"):
        import_maskset(src2, tmp_path / "o2", "known=255")
    ms = import_maskset(src2, tmp_path / "o3", "known=255", binarize=128)
    assert not ms.hole("soft")[0, 0]  # 128 >= 128 -> 255 -> known
    ms = import_maskset(src2, tmp_path / "o4", "known=255", binarize=200)
    assert ms.hole("soft")[0, 0]


def test_open_validates_files(tmp_path):
    ms = make_maskset("mat-large", 2, 64, 0, tmp_path / "ms")
    p = tmp_path / "ms" / "000001.png"
    Image.fromarray(np.full((64, 64), 77, np.uint8)).save(p)
    with pytest.raises(InputError, match=r"000001\.png: mask has values other than 0 and 255"):
        ms.hole(1)
    Image.fromarray(np.zeros((60, 64), np.uint8)).save(p)
    with pytest.raises(InputError, match=r"000001\.png: mask is 64x60, the mask set says 64x64"):
        ms.hole("000001")
    assert ms.verify() == ["000001"]
    assert ms.hole(0, image_size=64).shape == (64, 64)
    with pytest.raises(InputError, match=r"000000\.png: mask is 64x64, the image is 128x128"):
        ms.hole(0, image_size=(128, 128))
    with pytest.raises(InputError, match="no maskset.json"):
        MaskSet.open(tmp_path)


def test_stats_histogram():
    st = hole_ratio_stats([0.0, 0.05, 0.1, 0.55, 1.0])
    assert st["histogram"]["counts"] == [2, 1, 0, 0, 0, 1, 0, 0, 0, 1]
    assert st["mean"] == pytest.approx(0.34) and st["n"] == 5


def test_cli_make_stats_import(tmp_path, capsys):
    ds = tmp_path / "ds"
    ds.mkdir()
    for name in ("x", "y", "z"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(ds / f"{name}.png")
    out = tmp_path / "ms"
    assert main(["masks", "make", "--kind", "mat-large", "--res", "64", "--seed", "3", "--names-from", str(ds),
                 "-o", str(out)]) == 0
    assert MaskSet.open(out).names == ["x", "y", "z"]
    assert np.array_equal(MaskSet.open(out).hole("y"), generate_mask("mat-large", 64, 4))
    assert main(["masks", "stats", str(out), "-o", str(tmp_path / "s.json"), "--plot", str(tmp_path / "h.png")]) == 0
    st = json.loads((tmp_path / "s.json").read_text())
    assert sum(st["histogram"]["counts"]) == 3 and len(st["histogram"]["counts"]) == 10
    assert Image.open(tmp_path / "h.png").format == "PNG"
    capsys.readouterr()
    # import without polarity: one-line error, exit 2
    code = main(["masks", "import", str(out), "-o", str(tmp_path / "imp")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--polarity" in err
    assert not (tmp_path / "imp").exists()
    assert main(["masks", "import", str(out), "--polarity", "known=255", "-o", str(tmp_path / "imp")]) == 0
    assert np.array_equal(MaskSet.open(tmp_path / "imp").hole("z"), generate_mask("mat-large", 64, 5))
