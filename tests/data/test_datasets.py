"""Datasets: folders and zips, ids, decoding, presets, and the one-line errors through the CLI."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from matbench.cli import main
from matbench.data.datasets import Dataset
from matbench.data.preprocess import prepare
from matbench.data.presets import check_preset
from matbench.errors import InputError


def _save(path: Path, arr: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    _save(root / "b.png", _rgb(40, 30, 1))
    _save(root / "a.JPG", _rgb(20, 20, 2))
    _save(root / "sub" / "c.webp", _rgb(16, 24, 3), "WEBP")
    _save(root / "sub" / "deeper" / "d.bmp", _rgb(10, 12, 4))
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    _save(root / "gray.png", gray)
    rgba = np.dstack([_rgb(8, 8, 5), np.full((8, 8), 7, np.uint8)])
    _save(root / "alpha.png", rgba)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    _save(root / ".hidden" / "x.png", _rgb(4, 4, 6))
    return root


def test_ids_sorted_relative_without_extension(tree):
    ds = Dataset.open(tree)
    assert ds.ids == ["a", "alpha", "b", "gray", "sub/c", "sub/deeper/d"]
    assert len(ds) == 6 and ds.name == "ds"
    assert ds.source_name("sub/c") == str(tree / "sub" / "c.webp")


def test_read_decodes_gray_to_3ch_and_drops_alpha(tree):
    ds = Dataset.open(tree)
    g = ds.read("gray")
    assert g.shape == (8, 8, 3) and g.dtype == np.uint8
    assert np.array_equal(g[..., 0], g[..., 2]) and g[1, 0, 0] == 32
    a = ds.read("alpha")
    assert a.shape == (8, 8, 3)
    np.testing.assert_array_equal(a, _rgb(8, 8, 5))
    np.testing.assert_array_equal(ds.read("b"), _rgb(40, 30, 1))  # png lossless


def test_load_is_prepare_of_read(tree):
    ds = Dataset.open(tree)
    out = ds.load("b", 64)
    assert out.shape == (64, 64, 3)
    np.testing.assert_array_equal(out, prepare(ds.read("b"), 64, "mat-val"))
    np.testing.assert_array_equal(ds.load("b", 64, "resize-crop"), prepare(ds.read("b"), 64, "resize-crop"))


def test_zip_gives_same_ids_and_pixels(tree, tmp_path):
    zpath = tmp_path / "ds.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(tree.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(tree).as_posix())
        zf.writestr("__MACOSX/._b.png", b"junk")
    zds, dds = Dataset.open(zpath), Dataset.open(tree)
    assert zds.ids == dds.ids and zds.name == "ds"
    for i in dds.ids:
        np.testing.assert_array_equal(zds.read(i), dds.read(i))
    assert zds.source_name("b") == f"{zpath}:b.png"
    assert zds.manifest_sha256() == dds.manifest_sha256()


def test_duplicate_ids_rejected(tmp_path):
    _save(tmp_path / "d" / "x.png", _rgb(4, 4, 0))
    _save(tmp_path / "d" / "x.jpg", _rgb(4, 4, 0))
    with pytest.raises(InputError, match="both give the id 'x'"):
        Dataset.open(tmp_path / "d")


def test_manifest_sha_changes_with_content(tree):
    h1 = Dataset.open(tree).manifest_sha256()
    assert len(h1) == 64
    _save(tree / "b.png", _rgb(40, 30, 99))
    assert Dataset.open(tree).manifest_sha256() != h1


# -- presets --------------------------------------------------------------------------------------------------


def _places_ids(numbers):
    return [f"val_large/Places365_val_{i:08d}" for i in numbers]


def test_places_preset_names_missing_precisely():
    full = list(range(1, 36501))
    assert check_preset(_places_ids(full), "places365-val").ok
    ids = _places_ids([i for i in full if i not in (7, 36500)])
    r = check_preset(ids + ["val_large/extra"], "places365-val")
    assert not r.ok and r.found == 36499
    assert r.missing == ["Places365_val_00000007", "Places365_val_00036500"]
    assert r.unexpected == ["val_large/extra"]
    msg = r.message("X")
    assert "expects 36,500 images, found 36,499" in msg and "2 missing: Places365_val_00000007" in msg


def test_celeba_preset_count_and_names():
    ids = [str(i) for i in range(2993)]
    assert check_preset(ids, "celeba-hq-val").ok
    r = check_preset(ids[:-1] + ["face_a"], "celeba-hq-val")
    assert not r.ok and r.unexpected == ["face_a"]
    r = check_preset(ids[:2990], "celeba-hq-val")
    assert not r.ok and "expects 2,993 images, found 2,990" in r.message("X")
    r = check_preset([*ids[:-1], "00005"], "celeba-hq-val")
    assert r.duplicates == ["5 / 00005"]


def test_preset_checked_on_open(tree):
    with pytest.raises(InputError, match="preset places365-val expects 36,500 images, found 6"):
        Dataset.open(tree, preset="places365-val")


# -- bad inputs through the CLI: one line on stderr, exit 2, no traceback ----------------------------------------


def _cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def _assert_one_line(err: str, *needles: str):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("matbench: error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


def test_cli_nonexistent_path(capsys, tmp_path):
    code, err = _cli(capsys, "data", "info", str(tmp_path / "nope"))
    assert code == 2
    _assert_one_line(err, str(tmp_path / "nope"), "no such file or directory")


def test_cli_empty_dir(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, err = _cli(capsys, "data", "manifest", str(tmp_path / "empty"), "-o", str(tmp_path / "m.json"))
    assert code == 2
    _assert_one_line(err, "empty", "no image files")
    assert not (tmp_path / "m.json").exists()


def test_cli_zip_that_is_not_a_zip(capsys, tmp_path):
    bad = tmp_path / "fake.zip"
    bad.write_bytes(b"PK but not really a zip archive" * 10)
    code, err = _cli(capsys, "data", "info", str(bad))
    assert code == 2
    _assert_one_line(err, "fake.zip", "not a zip archive")


def test_cli_undecodable_file_named_with_reason(capsys, tmp_path):
    d = tmp_path / "d"
    _save(d / "good.png", _rgb(8, 8, 0))
    (d / "broken.jpg").write_bytes(b"this is not an image at all")
    code, err = _cli(capsys, "data", "prepare", str(d), "-o", str(tmp_path / "out"), "--res", "16")
    assert code == 2
    _assert_one_line(err, str(d / "broken.jpg"), "cannot decode image", "UnidentifiedImageError")
    assert "BytesIO" not in err


def test_cli_truncated_png_reason(capsys, tmp_path):
    d = tmp_path / "d"
    _save(d / "t.png", _rgb(64, 64, 0))
    data = (d / "t.png").read_bytes()
    (d / "t.png").write_bytes(data[: len(data) // 2])
    code, err = _cli(capsys, "data", "prepare", str(d), "-o", str(tmp_path / "out"), "--res", "16")
    assert code == 2
    _assert_one_line(err, "t.png", "cannot decode image", "truncated")


def test_cli_info_preset_reports_missing(capsys, tmp_path):
    d = tmp_path / "places"
    for i in (1, 2, 4):
        _save(d / f"Places365_val_{i:08d}.jpg", _rgb(8, 8, i))
    code = main(["data", "info", str(d), "--preset", "places365-val"])
    out = capsys.readouterr().out
    assert code == 1
    assert "found 3" in out and "36,497 missing: Places365_val_00000003, Places365_val_00000005" in out
